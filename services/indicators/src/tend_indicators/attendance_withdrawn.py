"""Applying checkin's AttendanceWithdrawn: staff marked a student absent from a session, withdrawing any attendance
recorded before (a mark in error, a check-in for someone who was not there). Checkin declares the queue
(`<ns>.indicators.attendance_withdrawn`) so no withdrawal is lost before indicators consumes it.

Marks and withdrawals arrive on separate queues in any order, so each withdrawal is kept (the latest per student and
session): it removes a mark recorded at or before it now, and keeps out one that arrives later but was recorded
before it. A mark recorded after it (staff changed their mind again) stands. The recompute that follows withdraws
or raises flags whose evidence changed.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import psycopg
from psycopg_pool import ConnectionPool
from tend.checkin.v1 import events_pb2

from tend_common.messaging.consumer import Delivery, PoisonMessage
from tend_common.messaging.decoding import decode_event, require_fields
from tend_common.messaging.inbox import claim_event
from tend_indicators.ingest.records import CHANGED_CHANNEL

ROUTING_KEY = "checkin.attendance_withdrawn.v1"
QUEUE_PURPOSE = "attendance_withdrawn"
CONSUMER_NAME = "indicators.attendance_withdrawn"
SUPPORTED_SCHEMA_VERSIONS = frozenset({1})


@dataclass(frozen=True)
class Withdrawal:
    event_id: str
    session_id: uuid.UUID
    student_pseudonym: str
    module_run_id: str
    session_starts_at: datetime
    withdrawn_at: datetime


def parse_withdrawal(delivery: Delivery) -> Withdrawal:
    """Reads and validates an AttendanceWithdrawn event; one that can never be applied is a PoisonMessage."""
    event = decode_event(delivery, events_pb2.AttendanceWithdrawn, SUPPORTED_SCHEMA_VERSIONS)
    require_fields(event, "session_id", "student_pseudonym", "module_run_id", "withdrawn_at", "session_starts_at")
    try:
        session_id = uuid.UUID(event.session_id)
    except ValueError as exc:
        raise PoisonMessage("session_id is not a UUID") from exc
    return Withdrawal(
        event_id=delivery.event_id,
        session_id=session_id,
        student_pseudonym=event.student_pseudonym,
        module_run_id=event.module_run_id,
        session_starts_at=event.session_starts_at.ToDatetime(tzinfo=UTC),
        withdrawn_at=event.withdrawn_at.ToDatetime(tzinfo=UTC),
    )


def store_withdrawal(cursor: psycopg.Cursor[Any], withdrawal: Withdrawal) -> bool:
    """Applies the withdrawal once: keeps it (the latest per student and session) and removes a mark recorded at or
    before it. Returns whether a mark was removed."""
    if not claim_event(cursor, CONSUMER_NAME, withdrawal.event_id):
        return False
    cursor.execute(
        "INSERT INTO attendance_withdrawals (session_id, student_pseudonym, module_run_id, session_starts_at,"
        " withdrawn_at, event_id) VALUES (%s, %s, %s, %s, %s, %s) ON CONFLICT (session_id, student_pseudonym)"
        " DO UPDATE SET withdrawn_at = EXCLUDED.withdrawn_at, event_id = EXCLUDED.event_id"
        " WHERE attendance_withdrawals.withdrawn_at < EXCLUDED.withdrawn_at",
        (
            withdrawal.session_id,
            withdrawal.student_pseudonym,
            withdrawal.module_run_id,
            withdrawal.session_starts_at,
            withdrawal.withdrawn_at,
            withdrawal.event_id,
        ),
    )
    cursor.execute(
        "DELETE FROM attendance WHERE session_id = %s AND student_pseudonym = %s AND recorded_at <= %s",
        (withdrawal.session_id, withdrawal.student_pseudonym, withdrawal.withdrawn_at),
    )
    removed = cursor.rowcount > 0
    # Even with nothing removed the session is now known as an expected contact point: recompute soon.
    cursor.execute(f"NOTIFY {CHANGED_CHANNEL}")
    return removed


def handler(pool: ConnectionPool) -> Callable[[Delivery], None]:
    """Applies each withdrawal in its own transaction, committed before the consumer acknowledges it."""

    def handle(delivery: Delivery) -> None:
        withdrawal = parse_withdrawal(delivery)
        with pool.connection() as conn, conn.transaction(), conn.cursor() as cur:
            store_withdrawal(cur, withdrawal)

    return handle
