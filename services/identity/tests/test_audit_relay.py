"""Access decisions reach RabbitMQ: the outbox relay publishes them with confirms to the audit routing key."""

from __future__ import annotations

import uuid

import pika
from psycopg_pool import ConnectionPool
from tend.audit.v1 import events_pb2

from tend_common.messaging.outbox import OutboxRelay
from tend_common.messaging.publisher import ConfirmingPublisher
from tend_common.messaging.topology import Topology, declare_consumer_queue
from tend_identity import decisions, demo
from tend_identity.audit_events import ROUTING_KEY
from tend_identity.model import Actor, PersonKind, Resource
from tend_testing.backends import Backends


def test_decisions_are_relayed_to_the_audit_routing_key(
    demo_pool: ConnectionPool, backends: Backends, amqp_namespace: str
) -> None:
    topology = Topology(amqp_namespace)
    queue = topology.queue("audit", "records")
    connection = pika.BlockingConnection(pika.URLParameters(backends.amqp_url))
    try:
        channel = connection.channel()
        declare_consumer_queue(channel, topology, queue, [ROUTING_KEY])
        teacher = Actor(demo.demo_id("person", "lecturer1"), PersonKind.STAFF)
        run = Resource("module_run", str(demo.demo_id("module_run", "CS101")))
        with demo_pool.connection() as conn:
            decisions.check_access(conn, teacher, "teaching_session.open", run, "take attendance")
            decisions.check_access(conn, teacher, "student.view", Resource("person", str(uuid.uuid4())), "")

        publisher = ConfirmingPublisher(backends.amqp_url, topology, producer="identity")
        try:
            assert OutboxRelay(demo_pool, publisher).relay_once() == 2
        finally:
            publisher.close()

        received = []
        for _ in range(2):
            method, properties, body = channel.basic_get(queue, auto_ack=True)
            assert method is not None
            assert properties.type == "tend.audit.v1.AuditEvent"
            event = events_pb2.AuditEvent.FromString(body)
            assert properties.message_id == event.meta.event_id
            received.append((event.action, event.outcome))
        assert received == [
            ("teaching_session.open", events_pb2.OUTCOME_ALLOWED),
            ("student.view", events_pb2.OUTCOME_REFUSED),
        ]
        with demo_pool.connection() as conn:
            assert conn.execute("SELECT count(*) FROM outbox").fetchone() == (0,)
    finally:
        connection.close()
