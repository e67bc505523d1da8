"""The pipelined confirming publisher against the real broker: many publishes in flight from many threads, each
confirmed to its own caller; unroutable events refused to theirs alone; a cut connection fails what was in flight,
and the publisher reconnects by itself. The cut goes through a TCP proxy this test controls, so no other test's
connections are touched."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import urlsplit, urlunsplit

import pika
import pytest
from tend.audit.v1 import events_pb2 as audit_events

from tend_common.messaging.envelope import OutgoingEvent, envelope, new_meta
from tend_common.messaging.pipelined_publisher import PipelinedPublisher
from tend_common.messaging.publisher import PublishError
from tend_common.messaging.topology import Topology, declare_consumer_queue
from tend_testing.backends import Backends

ROUTED = "audit.recorded.v1"
UNROUTED = "nobody.listens.v1"


class TcpProxy:
    """Forwards connections to `target`; `cut()` drops every connection open now."""

    def __init__(self, target: tuple[str, int]) -> None:
        self._target = target
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port: int = self._listener.getsockname()[1]
        self._sockets: list[socket.socket] = []
        self._lock = threading.Lock()
        self._closed = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(self._target)
            with self._lock:
                self._sockets += [client, upstream]
            for source, sink in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(source, sink), daemon=True).start()

    @staticmethod
    def _pipe(source: socket.socket, sink: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while data := source.recv(65536):
                sink.sendall(data)
        for end in (source, sink):
            with contextlib.suppress(OSError):
                end.shutdown(socket.SHUT_RDWR)

    def cut(self) -> None:
        with self._lock:
            sockets, self._sockets = self._sockets, []
        for sock in sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()

    def close(self) -> None:
        self._closed = True
        self._listener.close()
        self.cut()


def _event(routing_key: str = ROUTED) -> OutgoingEvent:
    return envelope(audit_events.AuditEvent(meta=new_meta("test"), action="test.pipelined"), routing_key)


@pytest.fixture
def topology(backends: Backends, amqp_namespace: str) -> Topology:
    topology = Topology(amqp_namespace)
    connection = pika.BlockingConnection(pika.URLParameters(backends.amqp_url))
    declare_consumer_queue(connection.channel(), topology, topology.queue("test", "pipelined"), [ROUTED])
    connection.close()
    return topology


@pytest.fixture
def publisher(backends: Backends, topology: Topology) -> Iterator[PipelinedPublisher]:
    publisher = PipelinedPublisher(backends.amqp_url, topology, "test")
    yield publisher
    publisher.close()


def _queued(backends: Backends, topology: Topology) -> set[str]:
    connection = pika.BlockingConnection(pika.URLParameters(backends.amqp_url))
    channel = connection.channel()
    ids: set[str] = set()
    while True:
        method, properties, _body = channel.basic_get(topology.queue("test", "pipelined"), auto_ack=True)
        if method is None:
            break
        ids.add(properties.message_id)
    connection.close()
    return ids


def test_many_threads_publish_at_once_and_each_learns_its_own_outcome(
    backends: Backends, topology: Topology, publisher: PipelinedPublisher
) -> None:
    events = [_event(UNROUTED if n % 10 == 0 else ROUTED) for n in range(1000)]

    def publish(event: OutgoingEvent) -> str:
        try:
            publisher.publish(event)
        except PublishError as exc:
            return str(exc)
        return "confirmed"

    started = time.monotonic()
    with ThreadPoolExecutor(max_workers=32) as pool:
        outcomes = list(pool.map(publish, events))
    elapsed = time.monotonic() - started

    for event, outcome in zip(events, outcomes, strict=True):
        expected = "confirmed" if event.routing_key == ROUTED else "no queue is bound for the event's routing key"
        assert outcome == expected
    assert _queued(backends, topology) == {e.event_id for e in events if e.routing_key == ROUTED}
    # Not a benchmark: only that confirms overlap (one at a time would be ~0.7 s per thousand here, at best).
    assert elapsed < 30


def test_a_cut_connection_fails_what_was_in_flight_then_reconnects(backends: Backends, topology: Topology) -> None:
    broker = urlsplit(backends.amqp_url)
    proxy = TcpProxy((broker.hostname or "127.0.0.1", broker.port or 5672))
    through_proxy = urlunsplit(broker._replace(netloc=f"{broker.username}:{broker.password}@127.0.0.1:{proxy.port}"))
    publisher = PipelinedPublisher(through_proxy, topology, "test", confirm_timeout=5.0, reconnect_delay=0.1)
    try:
        publisher.publish(_event())
        outcomes: list[str] = []
        lock = threading.Lock()
        stop = threading.Event()

        def keep_publishing() -> None:
            while not stop.is_set():
                event = _event()
                try:
                    publisher.publish(event)
                    outcome = "confirmed:" + event.event_id
                except PublishError as exc:
                    outcome = "failed:" + str(exc)
                with lock:
                    outcomes.append(outcome)

        threads = [threading.Thread(target=keep_publishing) for _ in range(8)]
        for thread in threads:
            thread.start()
        deadline = time.monotonic() + 10
        while len(outcomes) < 200 and time.monotonic() < deadline:
            time.sleep(0.01)
        proxy.cut()
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            with lock:
                failed = [o for o in outcomes if o.startswith("failed:")]
                confirmed_after_cut = outcomes.index(failed[0]) if failed else None
            if confirmed_after_cut is not None and any(
                o.startswith("confirmed:") for o in outcomes[confirmed_after_cut:]
            ):
                break
            time.sleep(0.05)
        stop.set()
        for thread in threads:
            thread.join(15)

        failed = [o for o in outcomes if o.startswith("failed:")]
        assert failed, "publishes in flight when the connection was cut must fail, not hang or pretend"
        first_failure = outcomes.index(failed[0])
        assert any(o.startswith("confirmed:") for o in outcomes[first_failure:]), "the publisher should reconnect"
        # Every publish reported as confirmed is in the queue: nothing confirmed was lost across the cut.
        confirmed = {o.split(":", 1)[1] for o in outcomes if o.startswith("confirmed:")}
        assert confirmed <= _queued(backends, topology)
    finally:
        publisher.close()
        proxy.close()


def test_unreachable_broker_is_a_publish_error(topology: Topology) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    publisher = PipelinedPublisher(f"amqp://guest:guest@127.0.0.1:{port}/%2F", topology, "test", connect_timeout=0.5)
    try:
        with pytest.raises(PublishError, match="broker unreachable"):
            publisher.publish(_event())
    finally:
        publisher.close()


def test_an_event_handed_over_after_a_lost_wake_up_is_still_sent(
    backends: Backends, topology: Topology, publisher: PipelinedPublisher
) -> None:
    publisher.publish(_event())
    # As if the I/O thread had been woken on a connection that closed before it ran: callers that follow do not
    # wake it again, and the periodic sweep must pick their events up.
    with publisher._handover_lock:
        publisher._wake_requested = True
    event = _event()

    started = time.monotonic()
    publisher.publish(event)

    assert time.monotonic() - started < 5
    assert event.event_id in _queued(backends, topology)
