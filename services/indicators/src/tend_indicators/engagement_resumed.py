"""Engagement resumed: a student whose open case had a supportive enquiry sent engages again (any source) after the
send. The case's history says so once per enquiry, and `CaseUpdated` (CASE_CHANGE_ENGAGEMENT_RESUMED, the enquiry's
request id in its meta) tells notify to stop reminding staff about it.

Checked where engagement is stored, in the same transaction: per ingest batch with one set-based query (and none
beyond a cheap indexed look-up while no enquiry waits), per attendance mark, and when a send is recorded (engagement
that arrived before notify's status did counts too).
"""

from __future__ import annotations

import uuid
import zoneinfo
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg
from tend.indicators.v1 import events_pb2

from tend_indicators import events
from tend_indicators.calendar import readable
from tend_indicators.case_event_outbox import add_case_event

# Fixed for ever: the event id of "engaged again after enquiry X" is derived from it, so it is published once.
RESUMED_EVENT_NAMESPACE = uuid.UUID("0b7e52c4-1f3d-4a86-9c2e-6d5a8f4b3e17")


@dataclass(frozen=True)
class Resumed:
    request_id: str
    case_id: uuid.UUID
    pseudonym: str
    # The first engagement dated after the send.
    first_at: datetime


def any_waiting(cursor: psycopg.Cursor[Any]) -> bool:
    """Whether any enquiry still waits for engagement (the partial index answers without reading the table)."""
    cursor.execute("SELECT EXISTS (SELECT 1 FROM case_enquiries WHERE resumed_at IS NULL)")
    row = cursor.fetchone()
    return bool(row and row[0])


# Marks the waiting enquiries of open cases whose student has engagement after the send in `found` (a query giving
# student_pseudonym and occurred_at), once: `resumed_at IS NULL` in the UPDATE makes a concurrent repeat a no-op.
_RESUME = (
    "WITH found AS ({found}), resumed AS ("
    " SELECT e.request_id, min(f.occurred_at) AS first_at FROM case_enquiries e"
    " JOIN cases c ON c.case_id = e.case_id AND c.status = 'open'"
    " JOIN found f ON f.student_pseudonym = e.student_pseudonym AND f.occurred_at > e.sent_at"
    " WHERE e.resumed_at IS NULL{only} GROUP BY e.request_id)"
    " UPDATE case_enquiries e SET resumed_at = r.first_at FROM resumed r"
    " WHERE e.request_id = r.request_id AND e.resumed_at IS NULL"
    " RETURNING e.request_id, e.case_id, e.student_pseudonym, r.first_at"
)


def after_batch(cursor: psycopg.Cursor[Any], table: str, timezone: str, now: datetime) -> int:
    """After a batch of engagement was stored from `table` (the ingest's staging table); returns how many enquiries
    were answered by engagement."""
    if not any_waiting(cursor):
        return 0
    cursor.execute(_RESUME.format(found=f"SELECT student_pseudonym, occurred_at FROM {table}", only=""))
    return _record(cursor, _rows(cursor), timezone, now)


def after_activity(
    cursor: psycopg.Cursor[Any], pseudonym: str, occurred_at: datetime, timezone: str, now: datetime
) -> int:
    """After one engagement fact (an attendance mark) was stored."""
    if not any_waiting(cursor):
        return 0
    found = "SELECT %(pseudonym)s::text AS student_pseudonym, %(at)s::timestamptz AS occurred_at"
    cursor.execute(_RESUME.format(found=found, only=""), {"pseudonym": pseudonym, "at": occurred_at})
    return _record(cursor, _rows(cursor), timezone, now)


def after_send(cursor: psycopg.Cursor[Any], request_id: str, timezone: str, now: datetime) -> int:
    """After a send was recorded: engagement stored before notify's status arrived, dated after the send, counts."""
    found = (
        "SELECT student_pseudonym, occurred_at FROM engagement_events WHERE student_pseudonym ="
        " (SELECT student_pseudonym FROM case_enquiries WHERE request_id = %(request_id)s)"
        " AND occurred_at > (SELECT sent_at FROM case_enquiries WHERE request_id = %(request_id)s)"
        " UNION ALL SELECT student_pseudonym, session_starts_at FROM attendance WHERE student_pseudonym ="
        " (SELECT student_pseudonym FROM case_enquiries WHERE request_id = %(request_id)s)"
        " AND session_starts_at > (SELECT sent_at FROM case_enquiries WHERE request_id = %(request_id)s)"
    )
    cursor.execute(_RESUME.format(found=found, only=" AND e.request_id = %(request_id)s"), {"request_id": request_id})
    return _record(cursor, _rows(cursor), timezone, now)


def _rows(cursor: psycopg.Cursor[Any]) -> list[Resumed]:
    return [Resumed(str(row[0]), row[1], row[2], row[3]) for row in cursor.fetchall()]


def entry_text(first_at: datetime, timezone: str) -> str:
    day = first_at.astimezone(zoneinfo.ZoneInfo(timezone)).date()
    return f"Engaged again on {readable(day.toordinal())} after the enquiry."


def _record(cursor: psycopg.Cursor[Any], resumed: list[Resumed], timezone: str, now: datetime) -> int:
    """A history line and a CaseUpdated per enquiry answered by engagement."""
    if not resumed:
        return 0
    case_ids = sorted({r.case_id for r in resumed})
    staff: dict[uuid.UUID, list[str]] = defaultdict(list)
    cursor.execute("SELECT case_id, person_id FROM case_staff WHERE case_id = ANY(%s) ORDER BY position", (case_ids,))
    for case_id, person_id in cursor.fetchall():
        staff[case_id].append(person_id)
    cursor.execute(
        "SELECT case_id, count(*) FROM flags WHERE case_id = ANY(%s) AND status = 'raised' GROUP BY 1", (case_ids,)
    )
    raised = {row[0]: int(row[1]) for row in cursor.fetchall()}
    cursor.executemany(
        "INSERT INTO case_entries (case_id, at, text, enquiry_request_id) VALUES (%s, %s, %s, %s)",
        [(r.case_id, now, entry_text(r.first_at, timezone), r.request_id) for r in resumed],
    )
    cursor.execute("UPDATE cases SET updated_at = %s WHERE case_id = ANY(%s)", (now, case_ids))
    for r in resumed:
        add_case_event(
            cursor,
            events.case_updated(
                r.case_id,
                r.pseudonym,
                events_pb2.CASE_CHANGE_ENGAGEMENT_RESUMED,
                staff[r.case_id],
                raised.get(r.case_id, 0),
                now,
                event_id=str(uuid.uuid5(RESUMED_EVENT_NAMESPACE, r.request_id)),
                request_id=r.request_id,
            ),
        )
    return len(resumed)
