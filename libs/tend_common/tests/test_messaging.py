"""The messaging plumbing against the real broker and database: confirms, acknowledgement after commit,
de-duplication, dead-lettering with a reason, and the outbox."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable, Iterator

import pika
import psycopg
import pytest
from tend.audit.v1 import events_pb2 as audit_events

from tend_common.db import open_pool
from tend_common.messaging.consumer import Consumer, Delivery, PoisonMessage
from tend_common.messaging.envelope import OutgoingEvent, envelope, new_meta
from tend_common.messaging.inbox import claim_event
from tend_common.messaging.outbox import OutboxRelay, add_to_outbox
from tend_common.messaging.publisher import ConfirmingPublisher, PublishError
from tend_common.messaging.topology import Topology, declare_consumer_queue
from tend_testing.backends import Backends

ROUTING_KEY = "audit.recorded.v1"


def _event(action: str = "test.action") -> OutgoingEvent:
    message = audit_events.AuditEvent(meta=new_meta("test"), action=action)
    return envelope(message, ROUTING_KEY)


def _wait_for(condition: Callable[[], bool], timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.05)
    raise AssertionError("condition not met in time")


@pytest.fixture
def topology(amqp_namespace: str) -> Topology:
    return Topology(amqp_namespace)


@pytest.fixture
def publisher(backends: Backends, topology: Topology) -> Iterator[ConfirmingPublisher]:
    publisher = ConfirmingPublisher(backends.amqp_url, topology, producer="test")
    yield publisher
    publisher.close()


@pytest.fixture
def dsn(database_factory: Callable[[str | None], str]) -> str:
    return database_factory(None)


def _declare(backends: Backends, topology: Topology, queue: str) -> None:
    connection = pika.BlockingConnection(pika.URLParameters(backends.amqp_url))
    declare_consumer_queue(connection.channel(), topology, queue, [ROUTING_KEY])
    connection.close()


def _drain(backends: Backends, queue: str) -> list[tuple[pika.spec.BasicProperties, bytes]]:
    connection = pika.BlockingConnection(pika.URLParameters(backends.amqp_url))
    channel = connection.channel()
    messages = []
    while True:
        method, properties, body = channel.basic_get(queue, auto_ack=True)
        if method is None:
            break
        messages.append((properties, body))
    connection.close()
    return messages


def _drain_until_some(backends: Backends, queue: str) -> list[tuple[pika.spec.BasicProperties, bytes]]:
    received: list[tuple[pika.spec.BasicProperties, bytes]] = []

    def some_arrived() -> bool:
        received.extend(_drain(backends, queue))
        return bool(received)

    _wait_for(some_arrived)
    return received


def test_publish_without_a_bound_queue_is_an_error_not_a_silent_loss(publisher: ConfirmingPublisher) -> None:
    with pytest.raises(PublishError, match="no queue is bound"):
        publisher.publish(_event())


def test_confirmed_event_carries_its_id_type_and_version(
    backends: Backends, topology: Topology, publisher: ConfirmingPublisher
) -> None:
    queue = topology.queue("test", "audit")
    _declare(backends, topology, queue)
    event = _event()
    publisher.publish(event)
    [(properties, body)] = _drain(backends, queue)
    assert properties.message_id == event.event_id
    assert properties.type == "tend.audit.v1.AuditEvent"
    assert properties.headers["schema_version"] == 1
    assert audit_events.AuditEvent.FromString(body).action == "test.action"


def _applying_handler(dsn: str, applied: list[str]) -> Callable[[Delivery], None]:
    def handle(delivery: Delivery) -> None:
        with psycopg.connect(dsn) as conn, conn.cursor() as cur:
            if claim_event(cur, "test", delivery.event_id):
                applied.append(delivery.event_id)

    return handle


def test_consumer_applies_a_redelivered_event_once(
    backends: Backends, topology: Topology, publisher: ConfirmingPublisher, dsn: str
) -> None:
    queue = topology.queue("test", "audit")
    applied: list[str] = []
    consumer = Consumer(backends.amqp_url, topology, queue, [ROUTING_KEY], _applying_handler(dsn, applied))
    consumer.declare()
    event = _event()
    publisher.publish(event)
    publisher.publish(event)  # the same event id again, as after a producer retry
    consumer.start()
    try:
        _wait_for(lambda: len(applied) == 1)
        time.sleep(0.5)
        assert applied == [event.event_id]
        with psycopg.connect(dsn) as conn:
            assert conn.execute("SELECT count(*) FROM inbox_processed_events").fetchone() == (1,)
    finally:
        consumer.stop()


def test_poison_message_goes_to_the_dead_letter_queue_with_its_reason(
    backends: Backends, topology: Topology, publisher: ConfirmingPublisher
) -> None:
    queue = topology.queue("test", "audit")

    def refuse(delivery: Delivery) -> None:
        raise PoisonMessage("unknown schema version 99")

    consumer = Consumer(backends.amqp_url, topology, queue, [ROUTING_KEY], refuse)
    consumer.declare()
    event = _event()
    publisher.publish(event)
    consumer.start()
    try:
        dead = _drain_until_some(backends, topology.dead_letter_queue(queue))
        [(properties, _body)] = dead
        assert properties.message_id == event.event_id
        assert properties.headers["x-tend-reason"] == "unknown schema version 99"
        assert _drain(backends, queue) == []
    finally:
        consumer.stop()


def test_failed_handler_is_retried_until_it_succeeds(
    backends: Backends, topology: Topology, publisher: ConfirmingPublisher
) -> None:
    queue = topology.queue("test", "audit")
    attempts: list[str] = []
    done = threading.Event()

    def flaky(delivery: Delivery) -> None:
        attempts.append(delivery.event_id)
        if len(attempts) < 3:
            raise RuntimeError("database briefly unavailable")
        done.set()

    consumer = Consumer(backends.amqp_url, topology, queue, [ROUTING_KEY], flaky, retry_pause_seconds=0.05)
    consumer.declare()
    publisher.publish(_event())
    consumer.start()
    try:
        assert done.wait(15)
        assert len(attempts) == 3
    finally:
        consumer.stop()


def test_outbox_relays_only_committed_events_and_removes_them(
    backends: Backends, topology: Topology, publisher: ConfirmingPublisher, dsn: str
) -> None:
    queue = topology.queue("test", "audit")
    _declare(backends, topology, queue)
    committed, rolled_back = _event("committed"), _event("rolled back")
    with psycopg.connect(dsn) as conn, conn.cursor() as cur:
        add_to_outbox(cur, committed)
    with psycopg.connect(dsn) as conn, conn.cursor() as cur:
        add_to_outbox(cur, rolled_back)
        conn.rollback()
    pool = open_pool(dsn, max_size=3)
    relay = OutboxRelay(pool, publisher, poll_seconds=0.1)
    relay.start()
    try:
        received = _drain_until_some(backends, queue)
        assert [p.message_id for p, _ in received] == [committed.event_id]
        with psycopg.connect(dsn) as conn:
            assert conn.execute("SELECT count(*) FROM outbox").fetchone() == (0,)
    finally:
        relay.stop()
        pool.close()


def test_outbox_keeps_events_the_broker_did_not_confirm(
    backends: Backends, topology: Topology, publisher: ConfirmingPublisher, dsn: str
) -> None:
    # No queue is bound, so every publish fails: nothing may be removed from the outbox.
    with psycopg.connect(dsn) as conn, conn.cursor() as cur:
        add_to_outbox(cur, _event())
    pool = open_pool(dsn, max_size=2)
    try:
        relay = OutboxRelay(pool, publisher)
        with pytest.raises(PublishError):
            relay.relay_once()
        with psycopg.connect(dsn) as conn:
            assert conn.execute("SELECT count(*) FROM outbox").fetchone() == (1,)
    finally:
        pool.close()


def test_event_id_is_required() -> None:
    message = audit_events.AuditEvent(action="x")
    with pytest.raises(ValueError, match="no event id"):
        envelope(message, ROUTING_KEY)
    assert uuid.UUID(new_meta("x").event_id)
