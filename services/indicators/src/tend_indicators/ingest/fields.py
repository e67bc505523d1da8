"""Checks shared by the file and batch formats: times, dates, identifiers and plain-text ids."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta

# Ids of module runs, assignments, sessions and activities: printable, no spaces, bounded.
_PLAIN_ID = re.compile(r"[A-Za-z0-9._:/#?=&%+@~-]{1,300}")
# Events dated this far ahead of the server's clock are a mistake (a wrong year, say), not engagement.
MAX_FUTURE = timedelta(days=1)


def plain_id(value: object) -> str | None:
    return value if isinstance(value, str) and _PLAIN_ID.fullmatch(value) else None


# Labels of module runs and titles of assignments: shown in flag sentences, so short and on one line.
MAX_LABEL = 120


def readable_label(value: object) -> str:
    """A label as stored (surrounding spaces removed), or raises ValueError saying what is wrong with it."""
    if not isinstance(value, str):
        raise ValueError("must be text")
    text = value.strip()
    if not text:
        raise ValueError("must not be empty (leave it out when there is none)")
    if len(text) > MAX_LABEL:
        raise ValueError(f"is longer than {MAX_LABEL} characters")
    if not text.isprintable():
        raise ValueError("must be printable text on one line (no control characters, tabs or line breaks)")
    return text


def aware_time(value: object, now: datetime | None = None) -> datetime | str:
    """A time with its zone, in UTC; or the reason it is not one."""
    if not isinstance(value, str) or not value:
        return "must be a date and time with a zone, for example 2026-02-03T10:15:00Z"
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        return "is not an ISO 8601 date and time"
    if parsed.tzinfo is None:
        return "has no time zone (add Z or an offset such as +01:00)"
    if parsed - (now or datetime.now(UTC)) > MAX_FUTURE:
        return "is in the future"
    return parsed.astimezone(UTC)


def calendar_date(value: object) -> date | str | None:
    """A YYYY-MM-DD date, None for an empty or absent value, or the reason it is not a date."""
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        return "must be a date as YYYY-MM-DD"
    try:
        return date.fromisoformat(value)
    except ValueError:
        return "must be a date as YYYY-MM-DD"
