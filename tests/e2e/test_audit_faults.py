"""Nothing the audit log accepts is lost or doubled: 10,000 audit events are produced through confirming publishers
while (a) the audit process is killed with SIGKILL and restarted, and (b) RabbitMQ is unreachable for 10 seconds
(a TCP proxy this test controls drops every connection and refuses new ones; the machine's broker is never touched).
Afterwards every confirmed event is in the log exactly once and `tend-audit verify` passes.

A producer counts an event as sent only when the broker confirmed it, and retries an unconfirmed one with the same
event id until it is; audit claims each event id in the transaction that appends it, so a redelivery changes nothing.
"""

from __future__ import annotations

import contextlib
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest

from tend_common.audit_client import Actor, Subject, audit_event
from tend_common.messaging.envelope import OutgoingEvent
from tend_common.messaging.publisher import ConfirmingPublisher, PublishError
from tend_common.messaging.topology import Topology
from tend_testing.backends import Backends
from tend_testing.plugin import DatabaseFactory
from tend_testing.processes import ServiceProcess, free_port

pytestmark = [pytest.mark.e2e, pytest.mark.fault, pytest.mark.xdist_group("audit-faults")]

EVENTS = 10_000
PRODUCER_THREADS = 4
DEADLINE_SECONDS = 120.0
OUTAGE_SECONDS = 10.0


def _wait_for(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.1)
    raise AssertionError(f"{what}: not within {timeout} s")


class BrokerProxy:
    """A TCP proxy to the broker. `cut` drops every open connection and refuses new ones for a while."""

    def __init__(self, target: tuple[str, int]) -> None:
        self._target = target
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(0.2)
        self.port: int = self._listener.getsockname()[1]
        self._lock = threading.Lock()
        self._open: set[socket.socket] = set()
        self._refuse_until = 0.0
        self._stopping = threading.Event()
        self.dropped = 0
        self.refused = 0
        threading.Thread(target=self._accept, name="broker-proxy", daemon=True).start()

    def cut(self, seconds: float) -> None:
        with self._lock:
            self._refuse_until = time.monotonic() + seconds
            dropped = list(self._open)
            self._open.clear()
        for sock in dropped:
            self._close(sock)
        self.dropped += len(dropped)

    def stop(self) -> None:
        self._stopping.set()
        self.cut(0)
        self._listener.close()

    def _accept(self) -> None:
        while not self._stopping.is_set():
            try:
                client, _address = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            if time.monotonic() < self._refuse_until:
                self.refused += 1
                client.close()
                continue
            try:
                upstream = socket.create_connection(self._target, timeout=5)
            except OSError:
                client.close()
                continue
            for sock in (client, upstream):
                # Without this, Nagle's algorithm and delayed acknowledgements stall each confirm round trip.
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            with self._lock:
                self._open.update((client, upstream))
            for source, sink in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(source, sink), daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for sock in (source, sink):
                with self._lock:
                    self._open.discard(sock)
                self._close(sock)

    @staticmethod
    def _close(sock: socket.socket) -> None:
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)
        sock.close()


class Producer:
    """Publishes the events from several threads, each with its own confirming publisher; an event is counted as
    sent only once confirmed, and an unconfirmed one is retried, with the same event id, until it is."""

    def __init__(self, amqp_url: str, topology: Topology, events: list[OutgoingEvent]) -> None:
        self._amqp_url = amqp_url
        self._topology = topology
        self._lock = threading.Lock()
        self.confirmed: set[str] = set()
        self.failures = 0
        self._threads = [
            threading.Thread(target=self._run, args=(events[n::PRODUCER_THREADS],), daemon=True)
            for n in range(PRODUCER_THREADS)
        ]

    def start(self) -> Producer:
        for thread in self._threads:
            thread.start()
        return self

    def join(self) -> None:
        for thread in self._threads:
            thread.join(DEADLINE_SECONDS)
        assert not any(t.is_alive() for t in self._threads), "producers did not finish"

    @property
    def sent(self) -> int:
        with self._lock:
            return len(self.confirmed)

    def _run(self, events: list[OutgoingEvent]) -> None:
        publisher = ConfirmingPublisher(self._amqp_url, self._topology, producer="fault-test")
        deadline = time.monotonic() + DEADLINE_SECONDS
        try:
            for event in events:
                while True:
                    try:
                        publisher.publish(event)
                        break
                    except PublishError:
                        with self._lock:
                            self.failures += 1
                        if time.monotonic() > deadline:
                            raise
                        time.sleep(0.1)
                with self._lock:
                    self.confirmed.add(event.event_id)
        finally:
            publisher.close()


def _events(count: int) -> list[OutgoingEvent]:
    return [
        audit_event(
            Actor.person(f"staff-{n % 97}"),
            "student.view",
            Subject("person", f"student-{n % 1009}"),
            "engagement support",
            "allowed",
            "fault-test",
            request_id=f"req-{n}",
        )
        for n in range(count)
    ]


@dataclass
class AuditUnderTest:
    dsn: str
    topology: Topology
    start: Callable[[], ServiceProcess]

    def logged(self) -> int:
        with psycopg.connect(self.dsn) as conn:
            row = conn.execute("SELECT seq FROM audit_log_head").fetchone()
        return int(row[0]) if row else 0

    def event_ids(self) -> list[str]:
        with psycopg.connect(self.dsn) as conn:
            return [str(row[0]) for row in conn.execute("SELECT event_id FROM audit_log").fetchall()]

    def verify(self) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "tend_audit", "verify"],
            env={"TEND_AUDIT_DATABASE_URL": self.dsn, "PATH": ""},
            capture_output=True,
            text=True,
            check=False,
            timeout=120,
        )


def _audit(
    backends: Backends, database_factory: DatabaseFactory, amqp_namespace: str, amqp_url: str, logs: Path
) -> AuditUnderTest:
    dsn = database_factory("tend_audit.migrations")
    port = free_port()
    env = {
        "TEND_AUDIT_DATABASE_URL": dsn,
        "TEND_AUDIT_AMQP_URL": amqp_url,
        "TEND_AUDIT_AMQP_NAMESPACE": amqp_namespace,
        "TEND_AUDIT_GRPC_PORT": str(port),
        "TEND_AUDIT_METRICS_PORT": "0",
        "TEND_AUDIT_IDENTITY_TARGET": "127.0.0.1:1",  # never asked: no queries in these tests
        "TEND_AUDIT_TREE_HEAD_EVERY_RECORDS": "2000",
    }

    def start() -> ServiceProcess:
        return ServiceProcess("audit", [sys.executable, "-m", "tend_audit", "serve"], env, logs).start().wait_grpc(port)

    return AuditUnderTest(dsn, Topology(amqp_namespace), start)


def _assert_every_event_once(audit: AuditUnderTest, producer: Producer) -> None:
    assert producer.sent == EVENTS
    _wait_for(lambda: audit.logged() >= EVENTS, 60, "every confirmed event appended")
    time.sleep(0.5)  # anything redelivered late would show up as an extra record now
    ids = audit.event_ids()
    assert len(ids) == len(set(ids)) == EVENTS
    assert set(ids) == producer.confirmed
    verified = audit.verify()
    assert verified.returncode == 0, verified.stderr
    assert f"{EVENTS} records" in verified.stdout
    assert " 0 signed tree heads" not in verified.stdout


@pytest.fixture
def processes() -> Iterator[list[ServiceProcess]]:
    started: list[ServiceProcess] = []
    yield started
    for process in started:
        process.terminate()


def test_every_event_is_logged_once_across_a_sigkill_of_audit(
    backends: Backends,
    database_factory: DatabaseFactory,
    amqp_namespace: str,
    tmp_path: Path,
    processes: list[ServiceProcess],
) -> None:
    audit = _audit(backends, database_factory, amqp_namespace, backends.amqp_url, tmp_path)
    processes.append(audit.start())
    producer = Producer(backends.amqp_url, audit.topology, _events(EVENTS)).start()
    _wait_for(lambda: audit.logged() >= 1000, 60, "audit appending")
    processes[0].kill()
    killed_at = audit.logged()
    assert producer.sent < EVENTS, "the kill must happen while events are still being produced"
    _wait_for(lambda: producer.sent >= killed_at + 1500, 60, "events produced while audit is down")
    assert audit.logged() == killed_at
    processes.append(audit.start())
    producer.join()
    _assert_every_event_once(audit, producer)


def test_every_event_is_logged_once_across_a_ten_second_broker_outage(
    backends: Backends,
    database_factory: DatabaseFactory,
    amqp_namespace: str,
    tmp_path: Path,
    processes: list[ServiceProcess],
) -> None:
    host, _sep, rest = backends.amqp_url.split("@", 1)[1].partition(":")
    broker_port = int(rest.split("/", 1)[0])
    proxy = BrokerProxy((host, broker_port))
    proxied_url = backends.amqp_url.replace(f"{host}:{broker_port}", f"127.0.0.1:{proxy.port}")
    try:
        audit = _audit(backends, database_factory, amqp_namespace, proxied_url, tmp_path)
        processes.append(audit.start())
        producer = Producer(proxied_url, audit.topology, _events(EVENTS)).start()
        _wait_for(lambda: producer.sent >= 2000 and audit.logged() >= 500, 60, "events flowing")
        proxy.cut(OUTAGE_SECONDS)
        cut_at = time.monotonic()
        sent_at_cut = producer.sent
        assert sent_at_cut < EVENTS, "the outage must begin while events are still being produced"
        time.sleep(OUTAGE_SECONDS / 2)
        assert producer.sent - sent_at_cut <= PRODUCER_THREADS, "nothing is confirmed while the broker is away"
        producer.join()
        assert time.monotonic() - cut_at >= OUTAGE_SECONDS
        _assert_every_event_once(audit, producer)
        assert proxy.dropped > 0
        assert proxy.refused > 0
        assert producer.failures > 0
        assert processes[0].running, "audit rode out the outage without restarting"
    finally:
        for process in processes:
            process.terminate()  # while the proxy still answers, so audit closes its connection cleanly
        proxy.stop()
