"""Notify's Prometheus metrics: counts and timings only, never an address or a person."""

from __future__ import annotations

from prometheus_client import Counter, Histogram

ENQUIRIES_REQUESTED = Counter("tend_notify_enquiries_requested_total", "Enquiry requests, by outcome", ["outcome"])
ATTEMPT_OUTCOMES = Counter("tend_notify_attempt_outcomes_total", "SMTP transactions, by outcome", ["outcome"])
SEND_SECONDS = Histogram("tend_notify_send_seconds", "Time to hand one message to the mail server")
FOLLOW_UPS = Counter("tend_notify_follow_ups_total", "Follow-up digests queued, by stage", ["stage"])
