"""Applying attendance events from checkin."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import psycopg
from google.protobuf.message import DecodeError
from tend.checkin.v1 import events_pb2

from tend_common.messaging.consumer import Delivery, PoisonMessage
from tend_common.messaging.inbox import claim_event
from tend_indicators.ingest.records import CHANGED_CHANNEL

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
    if delivery.schema_version not in SUPPORTED_SCHEMA_VERSIONS:
        raise PoisonMessage(f"unsupported schema version {delivery.schema_version}")
    try:
        event = events_pb2.AttendanceRecorded.FromString(delivery.body)
    except DecodeError as exc:
        raise PoisonMessage("body is not an AttendanceRecorded message") from exc
    if event.meta.event_id != delivery.event_id:
        raise PoisonMessage("message id and event id differ")
    problems = [
        name
        for name, present in (
            ("session_id", event.session_id),
            ("student_pseudonym", event.student_pseudonym),
            ("module_run_id", event.module_run_id),
            ("recorded_at", event.HasField("recorded_at")),
            ("session_starts_at", event.HasField("session_starts_at")),
        )
        if not present
    ]
    if problems:
        raise PoisonMessage("missing " + ", ".join(problems))
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


def store_attendance(cursor: psycopg.Cursor[Any], mark: AttendanceMark) -> bool:
    """Stores the mark unless this event, or another mark for the same student and session, was stored before."""
    if not claim_event(cursor, CONSUMER_NAME, mark.event_id):
        return False
    cursor.execute(
        "INSERT INTO attendance (session_id, student_pseudonym, module_run_id, session_starts_at, recorded_at,"
        " source, event_id) VALUES (%s, %s, %s, %s, %s, %s, %s) ON CONFLICT DO NOTHING",
        (
            mark.session_id,
            mark.student_pseudonym,
            mark.module_run_id,
            mark.session_starts_at,
            mark.recorded_at,
            mark.source,
            mark.event_id,
        ),
    )
    stored = cursor.rowcount == 1
    if stored:
        cursor.execute(f"NOTIFY {CHANGED_CHANNEL}")
    return stored
