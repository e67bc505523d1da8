"""Applying attendance events from checkin."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import psycopg
from tend.checkin.v1 import events_pb2

from tend_common.messaging.consumer import Delivery, PoisonMessage
from tend_common.messaging.decoding import decode_event, require_fields
from tend_common.messaging.inbox import claim_event
from tend_indicators import engagement_resumed
from tend_indicators.ingest.records import CHANGED_CHANNEL, DEFAULT_TIMEZONE

ROUTING_KEY = "checkin.attendance_recorded.v1"
Handler = Callable[[Delivery], None]
CONSUMER_NAME = "indicators.attendance"
SUPPORTED_SCHEMA_VERSIONS = frozenset({1})

_SOURCES = {
    events_pb2.ATTENDANCE_SOURCE_CODE: "code",
    events_pb2.ATTENDANCE_SOURCE_STAFF_CORRECTION: "staff_correction",
}


@dataclass(frozen=True)
class AttendanceMark:
    """One validated attendance fact."""

    event_id: str
    session_id: uuid.UUID
    student_pseudonym: str
    module_run_id: str
    session_starts_at: datetime
    recorded_at: datetime
    source: str


def parse_attendance(delivery: Delivery) -> AttendanceMark:
    """Reads and validates an AttendanceRecorded event; an event that can never be applied is a PoisonMessage."""
    event = decode_event(delivery, events_pb2.AttendanceRecorded, SUPPORTED_SCHEMA_VERSIONS)
    require_fields(event, "session_id", "student_pseudonym", "module_run_id", "recorded_at", "session_starts_at")
    if event.source not in _SOURCES:
        raise PoisonMessage(f"unknown attendance source {event.source}")
    try:
        session_id = uuid.UUID(event.session_id)
    except ValueError as exc:
        raise PoisonMessage("session_id is not a UUID") from exc
    return AttendanceMark(
        event_id=delivery.event_id,
        session_id=session_id,
        student_pseudonym=event.student_pseudonym,
        module_run_id=event.module_run_id,
        session_starts_at=event.session_starts_at.ToDatetime(tzinfo=UTC),
        recorded_at=event.recorded_at.ToDatetime(tzinfo=UTC),
        source=_SOURCES[event.source],
    )


def store_attendance(
    cursor: psycopg.Cursor[Any], mark: AttendanceMark, timezone: str = DEFAULT_TIMEZONE, now: datetime | None = None
) -> bool:
    """Stores the mark unless this event was applied before, or a withdrawal recorded at or after it (marks and
    withdrawals travel on separate queues, in any order) says the student was not there. For a student and session
    seen before, the later of the marks is kept, so a withdrawal between two marks removes only the first. Returns
    whether anything changed."""
    if not claim_event(cursor, CONSUMER_NAME, mark.event_id):
        return False
    cursor.execute(
        "INSERT INTO attendance (session_id, student_pseudonym, module_run_id, session_starts_at, recorded_at,"
        " source, event_id) SELECT %(session)s, %(pseudonym)s, %(run)s, %(starts)s, %(recorded)s, %(source)s,"
        " %(event)s WHERE NOT EXISTS (SELECT 1 FROM attendance_withdrawals WHERE session_id = %(session)s"
        " AND student_pseudonym = %(pseudonym)s AND withdrawn_at >= %(recorded)s)"
        " ON CONFLICT (session_id, student_pseudonym) DO UPDATE SET recorded_at = EXCLUDED.recorded_at,"
        " source = EXCLUDED.source, event_id = EXCLUDED.event_id WHERE attendance.recorded_at < EXCLUDED.recorded_at",
        {
            "session": mark.session_id,
            "pseudonym": mark.student_pseudonym,
            "run": mark.module_run_id,
            "starts": mark.session_starts_at,
            "recorded": mark.recorded_at,
            "source": mark.source,
            "event": mark.event_id,
        },
    )
    stored = cursor.rowcount == 1
    if stored:
        cursor.execute(f"NOTIFY {CHANGED_CHANNEL}")
        engagement_resumed.after_activity(
            cursor, mark.student_pseudonym, mark.session_starts_at, timezone, now or datetime.now(UTC)
        )
    return stored
