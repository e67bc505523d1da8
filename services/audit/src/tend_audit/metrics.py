"""Audit's Prometheus metrics. Counts and sizes only, never anything about a person."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

RECORDS_APPENDED = Counter("tend_audit_records_appended_total", "Records appended to the log.")
EVENTS_DUPLICATED = Counter(
    "tend_audit_events_duplicated_total", "Events delivered again after they were appended (skipped)."
)
BATCH_SIZE = Histogram(
    "tend_audit_batch_size", "Events per applied batch.", buckets=(1, 10, 50, 100, 250, 500, 1000, 2500, 5000)
)
LOG_SIZE = Gauge("tend_audit_log_size", "Records in the log (the size of the last signed or appended tree).")
TREE_HEADS_SIGNED = Counter("tend_audit_tree_heads_signed_total", "Signed tree heads made.")
QUERIES = Counter("tend_audit_queries_total", "Record queries and exports, by verb and outcome.", ["verb", "outcome"])
