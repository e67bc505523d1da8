"""The batch consumer against the real broker and database: batches committed with their event ids and acknowledged
together, redeliveries applied once, poison dead-lettered with its reason without losing the rest of its batch, and a
message that always fails isolated so the others go through."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence

import pika
import psycopg
import pytest
from tend.audit.v1 import events_pb2 as audit_events

from tend_common.messaging.batch_consumer import BatchConsumer, PoisonReasons, claim_events
from tend_common.messaging.consumer import Delivery
from tend_common.messaging.envelope import OutgoingEvent, envelope, new_meta
from tend_common.messaging.publisher import ConfirmingPublisher
from tend_common.messaging.topology import Topology
from tend_testing.backends import Backends

ROUTING_KEY = "audit.recorded.v1"
CONSUMER = "test.batch"


def _event(action: str) -> OutgoingEvent:
    return envelope(audit_events.AuditEvent(meta=new_meta("test"), action=action), ROUTING_KEY)


def _wait_for(condition: Callable[[], bool], timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.05)
    raise AssertionError("condition not met in time")


@pytest.fixture
def dsn(database_factory: Callable[[str | None], str]) -> str:
    dsn = database_factory(None)
    with psycopg.connect(dsn) as conn:
        conn.execute("CREATE TABLE applied (event_id text NOT NULL, action text NOT NULL, batch integer NOT NULL)")
    return dsn


@pytest.fixture
def topology(amqp_namespace: str) -> Topology:
    return Topology(amqp_namespace)


@pytest.fixture
def publisher(backends: Backends, topology: Topology) -> Iterator[ConfirmingPublisher]:
    publisher = ConfirmingPublisher(backends.amqp_url, topology, producer="test")
    yield publisher
    publisher.close()


class Applier:
    """A handler that applies each new event in one transaction per batch, and can be told to misbehave."""

    def __init__(self, dsn: str) -> None:
        self._dsn = dsn
        self.batches: list[int] = []
        self.poison_actions: set[str] = set()
        self.failing_actions: set[str] = set()
        self.fail_after_commit = 0

    def __call__(self, deliveries: Sequence[Delivery]) -> PoisonReasons:
        actions = [audit_events.AuditEvent.FromString(d.body).action for d in deliveries]
        if self.failing_actions & set(actions):
            raise RuntimeError("this event always fails")
        self.batches.append(len(deliveries))
        reasons = {i: f"cannot apply {a}" for i, a in enumerate(actions) if a in self.poison_actions}
        with psycopg.connect(self._dsn) as conn, conn.cursor() as cur:
            wanted = [d.event_id for i, d in enumerate(deliveries) if i not in reasons]
            new = claim_events(cur, CONSUMER, wanted)
            for i, delivery in enumerate(deliveries):
                if delivery.event_id in new:
                    new.discard(delivery.event_id)
                    cur.execute(
                        "INSERT INTO applied VALUES (%s, %s, %s)", (delivery.event_id, actions[i], len(self.batches))
                    )
        if self.fail_after_commit:
            self.fail_after_commit -= 1
            raise RuntimeError("lost the connection after the commit")  # as if the acknowledgement never went out
        return reasons

    def applied(self) -> list[tuple[str, str]]:
        with psycopg.connect(self._dsn) as conn:
            return [(str(e), str(a)) for e, a in conn.execute("SELECT event_id, action FROM applied").fetchall()]


def _consumer(backends: Backends, topology: Topology, handler: Applier, **options: object) -> BatchConsumer:
    consumer = BatchConsumer(
        backends.amqp_url,
        topology,
        topology.queue("test", "batch"),
        [ROUTING_KEY],
        handler,
        retry_pause_seconds=0.05,
        **options,  # type: ignore[arg-type]
    )
    consumer.declare()
    return consumer


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


def _publish_raw(backends: Backends, topology: Topology, body: bytes) -> None:
    """A message without an event id, as a foreign producer might send."""
    connection = pika.BlockingConnection(pika.URLParameters(backends.amqp_url))
    channel = connection.channel()
    channel.confirm_delivery()
    channel.basic_publish(topology.events_exchange, ROUTING_KEY, body, mandatory=True)
    connection.close()


def test_events_are_applied_once_in_batches_and_all_acknowledged(
    backends: Backends, topology: Topology, publisher: ConfirmingPublisher, dsn: str
) -> None:
    handler = Applier(dsn)
    consumer = _consumer(backends, topology, handler, max_batch=50, max_wait_seconds=0.2)
    events = [_event(f"a.{n}") for n in range(240)]
    for event in [*events, events[3], events[100]]:  # two repeated by the producer
        publisher.publish(event)
    consumer.start()
    try:
        _wait_for(lambda: len(handler.applied()) >= 240)
        _wait_for(lambda: sum(handler.batches) >= 242)
    finally:
        consumer.stop()
    assert sorted(handler.applied()) == sorted((e.event_id, f"a.{n}") for n, e in enumerate(events))
    assert max(handler.batches) == 50
    assert len(handler.batches) < 20
    assert _drain(backends, consumer.queue) == []  # every delivery acknowledged, none came back


def test_a_batch_committed_but_not_acknowledged_is_redelivered_and_changes_nothing(
    backends: Backends, topology: Topology, publisher: ConfirmingPublisher, dsn: str
) -> None:
    handler = Applier(dsn)
    handler.fail_after_commit = 1
    consumer = _consumer(backends, topology, handler, max_batch=20, max_wait_seconds=0.2)
    events = [_event(f"a.{n}") for n in range(20)]
    for event in events:
        publisher.publish(event)
    consumer.start()
    try:
        _wait_for(lambda: handler.fail_after_commit == 0 and sum(handler.batches) >= 40)
    finally:
        consumer.stop()
    assert sorted(e for e, _a in handler.applied()) == sorted(e.event_id for e in events)
    assert _drain(backends, consumer.queue) == []


def test_poison_goes_to_the_dead_letter_queue_with_its_reason_and_the_rest_of_the_batch_is_applied(
    backends: Backends, topology: Topology, publisher: ConfirmingPublisher, dsn: str
) -> None:
    handler = Applier(dsn)
    handler.poison_actions = {"bad.1", "bad.2"}
    consumer = _consumer(backends, topology, handler, max_batch=100, max_wait_seconds=0.3)
    events = [_event(a) for a in ("a.0", "bad.1", "a.1", "bad.2", "a.2")]
    for event in events:
        publisher.publish(event)
    _publish_raw(backends, topology, b"not even an event")
    consumer.start()
    dead: list[tuple[pika.spec.BasicProperties, bytes]] = []
    try:

        def all_dead_lettered() -> bool:
            dead.extend(_drain(backends, topology.dead_letter_queue(consumer.queue)))
            return len(dead) >= 3

        _wait_for(all_dead_lettered)
        _wait_for(lambda: len(handler.applied()) == 3)
    finally:
        consumer.stop()
    assert sorted(a for _e, a in handler.applied()) == ["a.0", "a.1", "a.2"]
    reasons = sorted(str(properties.headers["x-tend-reason"]) for properties, _body in dead)
    assert reasons == ["cannot apply bad.1", "cannot apply bad.2", "message has no message_id (event id)"]
    assert {properties.headers["x-tend-original-routing-key"] for properties, _body in dead} == {ROUTING_KEY}
    assert _drain(backends, consumer.queue) == []


def test_an_event_that_always_fails_is_isolated_and_the_others_are_applied(
    backends: Backends, topology: Topology, publisher: ConfirmingPublisher, dsn: str
) -> None:
    handler = Applier(dsn)
    handler.failing_actions = {"always.fails"}
    consumer = _consumer(backends, topology, handler, max_batch=100, max_wait_seconds=0.3, isolate_after=2)
    events = [_event(a) for a in ("a.0", "a.1", "always.fails", "a.2", "a.3")]
    for event in events:
        publisher.publish(event)
    consumer.start()
    dead: list[tuple[pika.spec.BasicProperties, bytes]] = []
    try:
        _wait_for(lambda: len(handler.applied()) == 4)

        def dead_lettered_by_the_broker() -> bool:
            dead.extend(_drain(backends, topology.dead_letter_queue(consumer.queue)))
            return bool(dead)

        # RabbitMQ's delivery limit gives up on it in the end; it is kept, not lost.
        _wait_for(dead_lettered_by_the_broker, timeout=60)
    finally:
        consumer.stop()
    assert sorted(a for _e, a in handler.applied()) == ["a.0", "a.1", "a.2", "a.3"]
    [(properties, _body)] = dead
    assert properties.message_id == events[2].event_id
