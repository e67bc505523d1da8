"""Identity's Prometheus metrics. Labels are outcomes and rule names only, never anything about a person."""

from __future__ import annotations

from prometheus_client import Counter, Histogram

SIGN_INS = Counter("tend_identity_sign_ins_total", "Sign-in attempts, by outcome.", ["outcome"])
ACCESS_DECISIONS = Counter(
    "tend_identity_access_decisions_total", "Access decisions, by outcome and deciding rule.", ["outcome", "rule"]
)
TOKENS_ISSUED = Counter("tend_identity_tokens_issued_total", "Signed tokens issued, by kind.", ["kind"])
AUDIT_BATCH_SIZE = Histogram(
    "tend_identity_audit_batch_records",
    "Audit records of access decisions committed together by one group commit.",
    buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256, 512),
)
FACTS_CACHE = Counter(
    "tend_identity_facts_cache_total", "Look-ups of organisation facts for decisions, by result.", ["result"]
)
