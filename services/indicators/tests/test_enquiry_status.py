"""Notify's delivery status and reminders become lines of the case's history, once each, and arrive through the
real broker."""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime

import psycopg
import pytest
from psycopg_pool import ConnectionPool
from tend.notify.v1 import events_pb2, notify_pb2

from tend_common.messaging.consumer import Consumer, Delivery, PoisonMessage
from tend_common.messaging.envelope import OutgoingEvent, envelope, new_meta
from tend_common.messaging.publisher import ConfirmingPublisher
from tend_common.messaging.topology import Topology
from tend_indicators import case_store, enquiry_status
from tend_testing.backends import Backends

NOW = datetime(2026, 3, 2, 9, tzinfo=UTC)


def _case(pool: ConnectionPool, pseudonym: str = "p_s00") -> uuid.UUID:
    with pool.connection() as conn, conn.transaction(), conn.cursor() as cur:
        case_id, _opened = case_store.open_case(cur, pseudonym, NOW)
    return case_id


def _delivered(case_id: uuid.UUID, status: int, reason: str = "", pseudonym: str = "p_s00") -> OutgoingEvent:
    message = events_pb2.EnquiryDeliveryUpdated(
        meta=new_meta("notify"),
        request_id="r-1",
        case_id=str(case_id),
        student_pseudonym=pseudonym,
        status=status,  # type: ignore[arg-type]
        attempts=1,
        reason=reason,
    )
    return envelope(message, enquiry_status.DELIVERY_UPDATED)


def _as_delivery(event: OutgoingEvent) -> Delivery:
    return Delivery(event.routing_key, event.event_id, event.type_name, event.schema_version, event.body, False)


def _entries(dsn: str) -> list[str]:
    with psycopg.connect(dsn) as conn:
        return [row[0] for row in conn.execute("SELECT text FROM case_entries ORDER BY entry_id")]


def test_statuses_and_reminders_are_written_to_the_case_once(pool: ConnectionPool, dsn: str) -> None:
    case_id = _case(pool)
    handle = enquiry_status.handler(pool, clock=lambda: NOW)
    deferred = _delivered(case_id, notify_pb2.DELIVERY_STATUS_DEFERRED, "the mail server said 451 (4.7.1)")
    sent = _delivered(case_id, notify_pb2.DELIVERY_STATUS_SENT)
    reminder = envelope(
        events_pb2.ReminderDue(
            meta=new_meta("notify"),
            request_id="r-1",
            case_id=str(case_id),
            student_pseudonym="p_s00",
            stage=events_pb2.FOLLOW_UP_STAGE_REMINDER,
        ),
        enquiry_status.REMINDER_DUE,
    )
    for event in (deferred, sent, sent, reminder):
        handle(_as_delivery(event))
    assert _entries(dsn) == [
        "Supportive enquiry deferred: the mail server will be tried again (the mail server said 451 (4.7.1)).",
        "Supportive enquiry sent.",
        "No answer yet: the sender was reminded to follow up.",
    ]


def test_a_status_for_another_students_case_changes_nothing(pool: ConnectionPool, dsn: str) -> None:
    case_id = _case(pool)
    enquiry_status.handler(pool)(_as_delivery(_delivered(case_id, notify_pb2.DELIVERY_STATUS_SENT, pseudonym="p_x")))
    assert _entries(dsn) == []


def test_an_unknown_status_is_poison() -> None:
    with pytest.raises(PoisonMessage, match="unknown delivery status"):
        enquiry_status.parse(_as_delivery(_delivered(uuid.uuid4(), 99)))


def test_the_consumer_applies_statuses_from_the_broker(
    backends: Backends, amqp_namespace: str, pool: ConnectionPool, dsn: str
) -> None:
    case_id = _case(pool)
    topology = Topology(amqp_namespace)
    consumer = Consumer(
        backends.amqp_url,
        topology,
        topology.queue("indicators", enquiry_status.QUEUE_PURPOSE),
        list(enquiry_status.ROUTING_KEYS),
        enquiry_status.handler(pool),
    )
    consumer.declare()
    publisher = ConfirmingPublisher(backends.amqp_url, topology, "notify")
    publisher.publish(_delivered(case_id, notify_pb2.DELIVERY_STATUS_SENT))
    publisher.close()
    consumer.start()
    try:
        deadline = time.monotonic() + 15
        while not _entries(dsn) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert _entries(dsn) == ["Supportive enquiry sent."]
    finally:
        consumer.stop()
