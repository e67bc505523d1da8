"""Attendance events from checkin: validated, stored by pseudonym, applied once however often delivered."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime

import psycopg
import pytest
from psycopg_pool import ConnectionPool
from tend.checkin.v1 import events_pb2

from tend_common.messaging.consumer import Consumer, Delivery, PoisonMessage
from tend_common.messaging.envelope import OutgoingEvent, envelope, new_meta, timestamp
from tend_common.messaging.publisher import ConfirmingPublisher
from tend_common.messaging.topology import Topology
from tend_indicators import attendance
from tend_indicators.__main__ import attendance_handler
from tend_testing.backends import Backends

STARTS = datetime(2026, 11, 26, 9, 0, tzinfo=UTC)


def _event(session_id: str | None = None, pseudonym: str = "p_abc", event_id: str | None = None) -> OutgoingEvent:
    message = events_pb2.AttendanceRecorded(
        meta=new_meta("checkin", event_id=event_id),
        session_id=session_id or str(uuid.uuid4()),
        module_run_id="mr-1",
        student_pseudonym=pseudonym,
        recorded_at=timestamp(STARTS),
        session_starts_at=timestamp(STARTS),
        source=events_pb2.ATTENDANCE_SOURCE_CODE,
    )
    return envelope(message, attendance.ROUTING_KEY)


def _delivery(event: OutgoingEvent, schema_version: int = 1) -> Delivery:
    return Delivery(event.routing_key, event.event_id, event.type_name, schema_version, event.body, False)


@pytest.fixture
def dsn(database_factory: Callable[[str | None], str]) -> str:
    return database_factory("tend_indicators.migrations")


def _rows(dsn: str) -> list[tuple[object, ...]]:
    with psycopg.connect(dsn) as conn:
        return conn.execute("SELECT student_pseudonym, module_run_id, source FROM attendance").fetchall()


def test_valid_event_is_parsed() -> None:
    mark = attendance.parse_attendance(_delivery(_event(pseudonym="p_xyz")))
    assert mark.student_pseudonym == "p_xyz"
    assert mark.session_starts_at == STARTS
    assert mark.source == "code"


@pytest.mark.parametrize(
    ("delivery", "reason"),
    [
        (_delivery(_event(), schema_version=2), "unsupported schema version 2"),
        (Delivery(attendance.ROUTING_KEY, "id", "", 1, b"\xff\xff", False), "not an AttendanceRecorded"),
        (_delivery(_event(session_id="not-a-uuid")), "session_id is not a UUID"),
        (_delivery(_event(pseudonym="")), "missing student_pseudonym"),
    ],
)
def test_events_that_can_never_apply_are_poison(delivery: Delivery, reason: str) -> None:
    with pytest.raises(PoisonMessage, match=reason):
        attendance.parse_attendance(delivery)


def test_the_same_check_in_is_stored_once(dsn: str) -> None:
    session_id = str(uuid.uuid4())
    first = _event(session_id=session_id, event_id="e-1")
    # A second event about the same student and session (a correction racing a check-in) is also a no-op.
    second = _event(session_id=session_id, event_id="e-2")
    with psycopg.connect(dsn) as conn, conn.cursor() as cur:
        assert attendance.store_attendance(cur, attendance.parse_attendance(_delivery(first)))
        assert not attendance.store_attendance(cur, attendance.parse_attendance(_delivery(first)))
        assert not attendance.store_attendance(cur, attendance.parse_attendance(_delivery(second)))
    assert _rows(dsn) == [("p_abc", "mr-1", "code")]


def test_consumer_stores_each_event_once_through_the_broker(backends: Backends, amqp_namespace: str, dsn: str) -> None:
    topology = Topology(amqp_namespace)
    pool = ConnectionPool(dsn, min_size=1, max_size=2, open=True)
    consumer = Consumer(
        backends.amqp_url,
        topology,
        topology.queue("indicators", "attendance"),
        [attendance.ROUTING_KEY],
        attendance_handler(pool),
    )
    consumer.declare()
    publisher = ConfirmingPublisher(backends.amqp_url, topology, "test")
    events = [_event(pseudonym=f"p_{n}") for n in range(20)]
    for event in [*events, *events[:5]]:  # five redelivered
        publisher.publish(event)
    publisher.close()
    consumer.start()
    try:
        deadline = time.monotonic() + 15
        while len(_rows(dsn)) < 20 and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.3)
        assert sorted(str(row[0]) for row in _rows(dsn)) == sorted(f"p_{n}" for n in range(20))
    finally:
        consumer.stop()
        pool.close()
