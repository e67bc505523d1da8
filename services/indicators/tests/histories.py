"""The constructed history the recompute and gRPC tests share (the `cohort` fixture in conftest.py stores it): a
module run of twelve students in a spring term, one of whom goes quiet after 30 January."""

from __future__ import annotations

from datetime import UTC, date, datetime

from tend_indicators.recompute import RecomputeOptions
from tend_indicators.rules_config import parse_rules_config

RUN = "run-cs101"
TERM_STARTS = date(2026, 1, 12)
CONFIG = parse_rules_config(
    {
        "institutions": {
            "uni": {"calendar": {"terms": [{"name": "spring", "starts_on": "2026-01-12", "ends_on": "2026-05-01"}]}}
        }
    }
)
OPTIONS = RecomputeOptions(default_institution="uni")
NOW = datetime(2026, 3, 1, 12, tzinfo=UTC)


def at(day: date, hour: int = 10) -> datetime:
    return datetime(day.year, day.month, day.day, hour, tzinfo=UTC)
