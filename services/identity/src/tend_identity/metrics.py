"""Identity's Prometheus metrics. Labels are outcomes and rule names only, never anything about a person."""

from __future__ import annotations

from prometheus_client import Counter

SIGN_INS = Counter("tend_identity_sign_ins_total", "Sign-in attempts, by outcome.", ["outcome"])
ACCESS_DECISIONS = Counter(
    "tend_identity_access_decisions_total", "Access decisions, by outcome and deciding rule.", ["outcome", "rule"]
)
TOKENS_ISSUED = Counter("tend_identity_tokens_issued_total", "Signed tokens issued, by kind.", ["kind"])
