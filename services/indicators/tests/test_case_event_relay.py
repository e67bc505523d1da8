"""Indicators' case-event relay against the real broker: it relays its own table (not the shared outbox) in
pipelined batches, and a case event no queue takes yet stays while the others go."""

from __future__ import annotations

from collections.abc import Iterator

import pika
import psycopg
import pytest
from psycopg_pool import ConnectionPool
from tend.audit.v1 import events_pb2 as audit_events

from tend_common.messaging.envelope import OutgoingEvent, envelope, new_meta
from tend_common.messaging.outbox import add_to_outbox
from tend_common.messaging.publisher import ConfirmingPublisher, UnroutableEvent
from tend_common.messaging.topology import Topology, declare_consumer_queue
from tend_indicators.case_event_outbox import CaseEventRelay, add_case_event
from tend_testing.backends import Backends

ROUTED = "indicators.case_updated.v1"
UNROUTED = "nobody.listens.v1"


def _event(routing_key: str) -> OutgoingEvent:
    return envelope(audit_events.AuditEvent(meta=new_meta("test"), action="test.case"), routing_key)


@pytest.fixture
def topology(backends: Backends, amqp_namespace: str) -> Topology:
    topology = Topology(amqp_namespace)
    connection = pika.BlockingConnection(pika.URLParameters(backends.amqp_url))
    declare_consumer_queue(connection.channel(), topology, topology.queue("test", "cases"), [ROUTED])
    connection.close()
    return topology


@pytest.fixture
def publisher(backends: Backends, topology: Topology) -> Iterator[ConfirmingPublisher]:
    publisher = ConfirmingPublisher(backends.amqp_url, topology, producer="indicators")
    yield publisher
    publisher.close()


def _queued(backends: Backends, topology: Topology) -> list[str]:
    connection = pika.BlockingConnection(pika.URLParameters(backends.amqp_url))
    channel = connection.channel()
    ids: list[str] = []
    while True:
        method, properties, _body = channel.basic_get(topology.queue("test", "cases"), auto_ack=True)
        if method is None:
            break
        ids.append(properties.message_id)
    connection.close()
    return ids


def test_case_events_go_from_their_own_table_and_an_unroutable_one_stays(
    backends: Backends, topology: Topology, publisher: ConfirmingPublisher, pool: ConnectionPool, dsn: str
) -> None:
    events = [_event(UNROUTED if n == 3 else ROUTED) for n in range(50)]
    shared_outbox_event = _event(ROUTED)
    with psycopg.connect(dsn) as conn, conn.cursor() as cur:
        for event in events:
            add_case_event(cur, event)
        add_to_outbox(cur, shared_outbox_event)

    with pytest.raises(UnroutableEvent):
        CaseEventRelay(pool, publisher).relay_once()

    assert _queued(backends, topology) == [e.event_id for e in events if e.routing_key == ROUTED]
    with psycopg.connect(dsn) as conn:
        assert [row[0] for row in conn.execute("SELECT event_id FROM case_event_outbox")] == [events[3].event_id]
        # The shared outbox is another relay's: this one leaves it alone.
        assert [row[0] for row in conn.execute("SELECT event_id FROM outbox")] == [shared_outbox_event.event_id]
