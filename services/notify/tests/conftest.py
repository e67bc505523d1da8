"""Fixtures for notify's tests: a fake identity over real gRPC, a real SMTP server, this test's own database, broker
namespace and Redis prefix, and the pieces of a notify process wired together in-process."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import grpc
import psycopg
import pytest
from psycopg_pool import ConnectionPool

from services.notify.tests.fake_identity import FakeIdentity
from services.notify.tests.smtp_server import RecordingSmtpServer
from tend_common.messaging.consumer import Delivery
from tend_common.messaging.envelope import OutgoingEvent
from tend_common.service_auth import ServiceTokenSigner, authenticated_channel
from tend_notify.contacts import IdentityContacts
from tend_notify.dispatcher import Dispatcher
from tend_notify.events import EnquiryRequest, enquiry_requested
from tend_notify.guards import RateLimiter, redis_client
from tend_notify.intake import enquiry_handler
from tend_notify.recovery import ProcessLease
from tend_notify.settings import Settings
from tend_notify.transport import InMemoryTransport
from tend_testing.backends import Backends
from tend_testing.plugin import DatabaseFactory

MIGRATIONS = "tend_notify.migrations"
# A Wednesday at noon in London: outside the default quiet hours (21:00 to 08:00).
NOON = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)


@pytest.fixture
def fake_identity() -> Iterator[FakeIdentity]:
    with FakeIdentity() as identity:
        yield identity


@pytest.fixture
def smtp_server() -> Iterator[RecordingSmtpServer]:
    server = RecordingSmtpServer().start()
    yield server
    server.stop()


@pytest.fixture
def notify_dsn(database_factory: DatabaseFactory) -> str:
    return database_factory(MIGRATIONS)


@pytest.fixture
def notify_settings(
    backends: Backends, notify_dsn: str, amqp_namespace: str, redis_prefix: str, fake_identity: FakeIdentity
) -> Settings:
    return Settings(
        database_url=notify_dsn,
        amqp_url=backends.amqp_url,
        amqp_namespace=amqp_namespace,
        redis_url=backends.redis_url,
        redis_prefix=redis_prefix,
        identity_target=fake_identity.target,
        service_key=fake_identity.service_key,
        grpc_port=0,
        metrics_port=0,
        retry_base_seconds=30,
        retry_max_seconds=600,
        max_attempts=4,
    )


class Clock:
    """A clock the test moves."""

    def __init__(self, now: datetime = NOON) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


@dataclass
class Notify:
    """Notify's parts over this test's database and the fake identity, driven step by step."""

    settings: Settings
    pool: ConnectionPool
    identity: FakeIdentity
    clock: Clock
    lease: ProcessLease
    dispatcher: Dispatcher
    transport: InMemoryTransport = field(default_factory=InMemoryTransport)
    sender: str = ""
    student: str = ""

    def make_request(self, **overrides: Any) -> EnquiryRequest:
        """An enquiry from the sender to the student."""
        fields: dict[str, Any] = {
            "request_id": uuid.uuid4(),
            "institution_id": "default",
            "student_pseudonym": self.student,
            "case_id": "case-1",
            "sender_person_id": self.sender,
            "template_name": "supportive_enquiry",
            "subject": "How are things going, {student_name}?",
            "body": "Dear {student_name},\n\nHow are you? I can help.\n\n{support_url}\n\n{sender_name}",
            "requested_at": self.clock(),
        }
        fields.update(overrides)
        return EnquiryRequest(**fields)

    def request(self, **overrides: Any) -> EnquiryRequest:
        """An enquiry queued as notify's intake queues one from its EnquiryRequested event."""
        request = self.make_request(**overrides)
        enquiry_handler(self.pool)(delivery_of(enquiry_requested(request)))
        return request

    def step(self) -> int:
        """One step of a sending thread: how many messages it took (sent, held or failed)."""
        return self.dispatcher.dispatch_once(self.transport)

    def drain(self, limit: int = 50) -> int:
        """Steps until nothing is due; how many messages were taken in all."""
        steps = taken = 0
        while steps < limit and (took := self.step()):
            steps += 1
            taken += took
        return taken

    def row(self, request_id: uuid.UUID) -> dict[str, Any]:
        with psycopg.connect(self.settings.database_url) as conn, conn.cursor(row_factory=psycopg.rows.dict_row) as cur:
            row = cur.execute("SELECT * FROM messages WHERE request_id = %s", (request_id,)).fetchone()
        assert row is not None
        return row

    def outbox(self) -> list[OutgoingEvent]:
        with psycopg.connect(self.settings.database_url) as conn:
            rows = conn.execute(
                "SELECT routing_key, event_id, type_name, schema_version, body FROM outbox ORDER BY id"
            ).fetchall()
        return [OutgoingEvent(r[0], r[1], r[2], r[3], bytes(r[4])) for r in rows]


def delivery_of(event: OutgoingEvent, redelivered: bool = False) -> Delivery:
    return Delivery(event.routing_key, event.event_id, event.type_name, event.schema_version, event.body, redelivered)


def identity_channel(identity: FakeIdentity) -> grpc.Channel:
    signer = ServiceTokenSigner("notify", identity.service_key)
    return authenticated_channel(identity.target, signer, "identity")


@pytest.fixture
def notify(notify_settings: Settings, fake_identity: FakeIdentity) -> Iterator[Notify]:
    pool = ConnectionPool(notify_settings.database_url, min_size=1, max_size=4, open=True)
    channel = identity_channel(fake_identity)
    client = redis_client(notify_settings.redis_url)
    clock = Clock()
    lease = ProcessLease(notify_settings.database_url)
    limiter = RateLimiter(client, notify_settings.redis_prefix, clock=lambda: clock().timestamp())
    dispatcher = Dispatcher(pool, notify_settings, IdentityContacts(channel), limiter, lease.key, clock=clock)
    harness = Notify(notify_settings, pool, fake_identity, clock, lease, dispatcher)
    harness.sender = fake_identity.add_staff("Dr Alex Example", "alex.example@example.ac.uk")
    harness.student = fake_identity.add_student("Sam", "sam.student@students.example.ac.uk")
    fake_identity.allow_enquiry(harness.sender, harness.student)
    yield harness
    lease.release()
    channel.close()
    client.close()
    pool.close()
