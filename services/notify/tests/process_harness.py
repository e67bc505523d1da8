"""A real `tend-notify serve` process for end-to-end and fault tests: its own database, broker namespace and Redis
prefix, a fake identity and a real SMTP server in the test process, and the portal's credential to call it with."""

from __future__ import annotations

import contextlib
import smtplib
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import grpc
import pika
import psycopg
from tend.notify.v1 import events_pb2, notify_pb2, notify_pb2_grpc

from services.notify.tests.fake_identity import FakeIdentity
from services.notify.tests.smtp_server import RecordingSmtpServer
from tend_common.messaging.topology import Topology
from tend_common.service_auth import ServiceTokenSigner, authenticated_channel, generate_service_key, public_key_text
from tend_notify.events import CASE_STATUS_CONSUMER, ENQUIRY_DELIVERY_UPDATED
from tend_testing.backends import Backends
from tend_testing.processes import ServiceProcess, free_port

STATUS_NAMES = {
    value: name.removeprefix("DELIVERY_STATUS_").lower() for name, value in notify_pb2.DeliveryStatus.items()
}


def eventually(query: Callable[[], Any], timeout: float = 60.0, what: str = "condition") -> Any:
    """Polls `query` until it returns something truthy; fails after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = query()
        if result:
            return result
        time.sleep(0.05)
    raise AssertionError(f"{what} not reached within {timeout} s")


class NotifyProcess:
    """One notify process (restartable) and what it talks to."""

    def __init__(
        self,
        backends: Backends,
        dsn: str,
        amqp_namespace: str,
        redis_prefix: str,
        identity: FakeIdentity,
        smtp: RecordingSmtpServer | None,
        log_dir: Path,
        settings: Mapping[str, str] | None = None,
    ) -> None:
        """`smtp` is the server the tests watch; without one, `settings` names the SMTP port."""
        self.dsn = dsn
        self.identity = identity
        self._smtp = smtp
        self.grpc_port = free_port()
        self._amqp_url = backends.amqp_url
        self._topology = Topology(amqp_namespace)
        self._portal_key = generate_service_key()
        self._env = {
            "TEND_NOTIFY_DATABASE_URL": dsn,
            "TEND_NOTIFY_AMQP_URL": backends.amqp_url,
            "TEND_NOTIFY_AMQP_NAMESPACE": amqp_namespace,
            "TEND_NOTIFY_REDIS_URL": backends.redis_url,
            "TEND_NOTIFY_REDIS_PREFIX": redis_prefix,
            "TEND_NOTIFY_GRPC_PORT": str(self.grpc_port),
            "TEND_NOTIFY_METRICS_PORT": "0",
            "TEND_NOTIFY_IDENTITY_TARGET": identity.target,
            "TEND_NOTIFY_SERVICE_KEY": identity.service_key,
            "TEND_NOTIFY_TRUSTED_SERVICES": f"portal={public_key_text(self._portal_key)}",
            "TEND_NOTIFY_SMTP_HOST": "127.0.0.1",
            "TEND_NOTIFY_SMTP_PORT": str(smtp.port if smtp else 25),
            "TEND_NOTIFY_SMTP_TIMEOUT_SECONDS": "10",
            "TEND_NOTIFY_RETRY_BASE_SECONDS": "0.2",
            "TEND_NOTIFY_RETRY_MAX_SECONDS": "1",
            "TEND_NOTIFY_DISPATCH_POLL_SECONDS": "0.1",
            "TEND_NOTIFY_HOUSEKEEPING_SECONDS": "1",
            **(settings or {}),
        }
        self._log_dir = log_dir
        self.process: ServiceProcess | None = None
        self._channel: grpc.Channel | None = None
        # The tests run at any hour: no quiet hours, so nothing waits for the morning.
        with psycopg.connect(dsn) as conn:
            conn.execute("UPDATE institutions SET quiet_hours_start = '00:00', quiet_hours_end = '00:00'")

    @property
    def smtp(self) -> RecordingSmtpServer:
        assert self._smtp is not None, "this notify process sends to a server the test does not watch"
        return self._smtp

    def start(self) -> NotifyProcess:
        command = [sys.executable, "-m", "tend_notify", "serve"]
        self.process = ServiceProcess("notify", command, self._env, self._log_dir).start()
        self.process.wait_grpc(self.grpc_port)
        return self

    def kill(self) -> None:
        assert self.process is not None
        self.process.kill()

    def stop(self) -> None:
        if self._channel is not None:
            self._channel.close()
            self._channel = None
        if self.process is not None:
            self.process.terminate()

    def log(self) -> str:
        return self.process.read_log() if self.process is not None else ""

    @property
    def stub(self) -> notify_pb2_grpc.NotifyServiceStub:
        if self._channel is None:
            signer = ServiceTokenSigner("portal", self._portal_key)
            self._channel = authenticated_channel(f"127.0.0.1:{self.grpc_port}", signer, "notify")
        return notify_pb2_grpc.NotifyServiceStub(self._channel)

    # --- people and requests ---

    def tutor_with_tutee(self, n: int = 0) -> tuple[str, str]:
        """A member of staff allowed to write to a new student; returns (person id, pseudonym)."""
        tutor = self.identity.add_staff(f"Dr Tutor {n}", f"tutor{n}@example.ac.uk")
        student = self.identity.add_student(f"Student {n}", f"student{n}@students.example.ac.uk")
        self.identity.allow_enquiry(tutor, student)
        return tutor, student

    def request_enquiry(self, tutor: str, student: str, **fields: str) -> str:
        request_id = fields.pop("request_id", str(uuid.uuid4()))
        self.stub.RequestEnquiry(
            notify_pb2.RequestEnquiryRequest(
                actor_assertion=self.identity.assertion(tutor),
                request_id=request_id,
                student_pseudonym=student,
                case_id=fields.pop("case_id", f"case-{uuid.uuid4().hex[:8]}"),
                **fields,
            ),
            timeout=30,
        )
        return request_id

    # --- what happened ---

    def status(self, request_id: str) -> str | None:
        with psycopg.connect(self.dsn) as conn:
            row = conn.execute("SELECT status FROM messages WHERE request_id = %s", (request_id,)).fetchone()
        return str(row[0]) if row else None

    def attempts(self, request_id: str) -> list[tuple[str, str | None]]:
        with psycopg.connect(self.dsn) as conn:
            rows = conn.execute(
                "SELECT phase, outcome FROM delivery_attempts WHERE request_id = %s ORDER BY attempt", (request_id,)
            ).fetchall()
        return [(str(r[0]), r[1]) for r in rows]

    def wait_status(self, request_id: str, *statuses: str, timeout: float = 60.0) -> str:
        found: str = eventually(
            lambda: (s := self.status(request_id)) in statuses and s, timeout, f"{request_id} reaching {statuses}"
        )
        return found

    def case_events(self) -> list[events_pb2.EnquiryDeliveryUpdated]:
        """Every status event published so far to the case queue (the queue indicators will consume), taken off it,
        each event id once, as a consumer applies them: a process killed between the broker's confirm and clearing its
        outbox publishes an event again after its restart.

        Waits until the outbox is empty (every event confirmed by the broker), then takes exactly as many messages as
        the queue holds.
        """
        with psycopg.connect(self.dsn) as conn:
            eventually(
                lambda: conn.execute("SELECT count(*) FROM outbox").fetchone() == (0,), what="the outbox relayed"
            )
        connection = pika.BlockingConnection(pika.URLParameters(self._amqp_url))
        channel = connection.channel()
        queue = self._topology.queue(*CASE_STATUS_CONSUMER)
        waiting = channel.queue_declare(queue, passive=True).method.message_count
        channel.basic_qos(prefetch_count=500)
        found = []
        seen: set[str] = set()
        taken = 0
        if waiting:
            for method, _properties, body in channel.consume(queue, inactivity_timeout=30):
                assert method is not None, "the case queue stopped delivering"
                channel.basic_ack(method.delivery_tag)
                if method.routing_key == ENQUIRY_DELIVERY_UPDATED:
                    event = events_pb2.EnquiryDeliveryUpdated.FromString(body)
                    if event.meta.event_id not in seen:
                        seen.add(event.meta.event_id)
                        found.append(event)
                taken += 1
                if taken == waiting:
                    break
            channel.cancel()
        connection.close()
        return found


@contextlib.contextmanager
def running_notify(
    backends: Backends,
    dsn: str,
    amqp_namespace: str,
    redis_prefix: str,
    log_dir: Path,
    settings: Mapping[str, str] | None = None,
    watched_smtp: bool = True,
) -> Iterator[NotifyProcess]:
    """A fake identity, a real SMTP server (unless `watched_smtp` is False and `settings` name another) and a started
    notify process, all stopped afterwards."""
    identity = FakeIdentity()
    identity.start()
    smtp = RecordingSmtpServer().start() if watched_smtp else None
    notify = NotifyProcess(backends, dsn, amqp_namespace, redis_prefix, identity, smtp, log_dir, settings)
    try:
        yield notify.start()
    finally:
        notify.stop()
        if smtp is not None:
            smtp.stop()
        identity.stop()


@contextlib.contextmanager
def smtp_sink(directory: Path) -> Iterator[int]:
    """A `tend-notify smtp-sink` process (its own process, so it does not share a core with the test) writing each
    message into `directory`; yields its port."""
    port = free_port()
    command = [sys.executable, "-m", "tend_notify", "smtp-sink", "--port", str(port), "--directory", str(directory)]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:

        def answers() -> bool:
            try:
                smtplib.SMTP("127.0.0.1", port, timeout=2).quit()
            except OSError:
                return False
            return True

        eventually(answers, 30, "the SMTP sink answering")
        yield port
    finally:
        process.terminate()
        process.wait(30)


def mailbox(directory: Path) -> list[Path]:
    """The messages a sink has written so far."""
    return [path for path in directory.iterdir() if path.suffix == ".eml"] if directory.exists() else []
