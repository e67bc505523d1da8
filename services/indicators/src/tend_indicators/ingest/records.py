"""Storing engagement records: new ones are inserted, ones seen before (by event key) are left alone."""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import psycopg

from tend_indicators import engagement_resumed
from tend_indicators.activity import SOURCE_BITS

# serve listens for this and recomputes soon after new engagement arrives.
CHANGED_CHANNEL = "tend_indicators_changed"
# Fixed for ever: stored event keys are derived from it and the records' natural keys.
EVENT_KEY_NAMESPACE = uuid.UUID("3f1d9b6a-58c2-4e7d-a1b0-9c8e7f6d5a4b")

DEFAULT_TIMEZONE = "Europe/London"
SOURCE_BIT_SQL = (
    "CASE source "
    + " ".join(f"WHEN '{name}' THEN {bit}" for name, bit in SOURCE_BITS.items())
    + f" ELSE {SOURCE_BITS['other']} END"
)
_COLUMNS = "event_key, student_pseudonym, module_run_id, source, activity, occurred_at, amount, object_ref"


@dataclass(frozen=True)
class EngagementRecord:
    """One engagement fact, keyed by pseudonym. `event_key` must be derived from the source's event id or from
    fields that identify no one (never from a name, e-mail, account name or student number)."""

    event_key: str
    student_pseudonym: str
    module_run_id: str
    source: str
    activity: str
    occurred_at: datetime
    amount: int = 1
    object_ref: str = ""


def digest(text: str) -> str:
    """A source's own id, kept only as a digest: some sources build ids from student numbers."""
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def stored_key(event_key: str) -> uuid.UUID:
    """The UUID a record is stored under: the same natural key always gives the same one."""
    return uuid.uuid5(EVENT_KEY_NAMESPACE, event_key)


def store_records(
    cursor: psycopg.Cursor[Any], records: Sequence[EngagementRecord], timezone: str = DEFAULT_TIMEZONE
) -> int:
    """Inserts the records whose event key is new, adds them to the daily totals (days in `timezone`, the
    institution's), and notes any supportive enquiry they answer (engagement resumed); returns how many were new.
    Runs inside the caller's transaction, so a batch is stored whole or not at all."""
    if not records:
        return 0
    cursor.execute(
        "CREATE TEMP TABLE IF NOT EXISTS incoming_engagement"
        " (LIKE engagement_events INCLUDING DEFAULTS) ON COMMIT DELETE ROWS"
    )
    cursor.execute("TRUNCATE incoming_engagement")
    with cursor.copy(f"COPY incoming_engagement ({_COLUMNS}) FROM STDIN") as copy:
        for r in records:
            copy.write_row(
                (
                    stored_key(r.event_key),
                    r.student_pseudonym,
                    r.module_run_id,
                    r.source,
                    r.activity,
                    r.occurred_at,
                    r.amount,
                    r.object_ref,
                )
            )
    # A key repeated within the batch conflicts with its first copy and is skipped like any other repeat. Only the
    # rows actually inserted are added to the daily totals, so a repeat changes nothing there either.
    cursor.execute(
        f"WITH inserted AS (INSERT INTO engagement_events ({_COLUMNS}) SELECT {_COLUMNS} FROM incoming_engagement"
        " ON CONFLICT (event_key) DO NOTHING RETURNING student_pseudonym, module_run_id, occurred_at, amount, source),"
        " daily AS (INSERT INTO daily_activity (student_pseudonym, module_run_id, day, amount, sources)"
        " SELECT student_pseudonym, module_run_id, (occurred_at AT TIME ZONE %s)::date, sum(amount),"
        f" bit_or({SOURCE_BIT_SQL}) FROM inserted GROUP BY 1, 2, 3"
        " ON CONFLICT (student_pseudonym, module_run_id, day) DO UPDATE SET"
        " amount = daily_activity.amount + EXCLUDED.amount, sources = daily_activity.sources | EXCLUDED.sources)"
        " SELECT count(*) FROM inserted",
        (timezone,),
    )
    row = cursor.fetchone()
    inserted = int(row[0]) if row else 0
    if inserted:
        cursor.execute(f"NOTIFY {CHANGED_CHANNEL}")
        engagement_resumed.after_batch(cursor, "incoming_engagement", timezone, datetime.now(UTC))
    return inserted
