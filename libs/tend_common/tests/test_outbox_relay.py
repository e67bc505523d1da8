"""The outbox relay against the real broker and database: a batch goes with its confirms outstanding and exactly the
confirmed rows are removed; an unroutable event stays while the rest of its batch goes; a connection cut mid-batch
leaves the unconfirmed rows, which go on the next pass. The cut goes through a TCP proxy this test controls, which
reads the AMQP frames passing through it so it can hold publishes back at an exact point."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from urllib.parse import urlsplit, urlunsplit

import pika
import psycopg
import pytest
from psycopg_pool import ConnectionPool
from tend.audit.v1 import events_pb2 as audit_events

from tend_common.db import open_pool
from tend_common.messaging.envelope import OutgoingEvent, envelope, new_meta
from tend_common.messaging.outbox import OutboxRelay, add_all_to_outbox
from tend_common.messaging.publisher import ConfirmingPublisher, InMemoryPublisher, PublishError, UnroutableEvent
from tend_common.messaging.topology import Topology, declare_consumer_queue
from tend_testing.backends import Backends

ROUTED = "audit.recorded.v1"
UNROUTED = "nobody.listens.v1"
_PROTOCOL_HEADER = 8
_BASIC_PUBLISH = b"\x00\x3c\x00\x28"  # class 60 (basic), method 40 (publish)
_BASIC_ACK = b"\x00\x3c\x00\x50"  # class 60 (basic), method 80 (ack)


def _event(routing_key: str = ROUTED) -> OutgoingEvent:
    return envelope(audit_events.AuditEvent(meta=new_meta("test"), action="test.relay"), routing_key)


def _wait_for(condition: Callable[[], bool], timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.02)
    raise AssertionError("condition not met in time")


@pytest.fixture
def topology(backends: Backends, amqp_namespace: str) -> Topology:
    topology = Topology(amqp_namespace)
    connection = pika.BlockingConnection(pika.URLParameters(backends.amqp_url))
    declare_consumer_queue(connection.channel(), topology, topology.queue("test", "relay"), [ROUTED])
    connection.close()
    return topology


@pytest.fixture
def dsn(database_factory: Callable[[str | None], str]) -> str:
    return database_factory(None)


@pytest.fixture
def pool(dsn: str) -> Iterator[ConnectionPool]:
    pool = open_pool(dsn, max_size=3)
    yield pool
    pool.close()


@pytest.fixture
def publisher(backends: Backends, topology: Topology) -> Iterator[ConfirmingPublisher]:
    publisher = ConfirmingPublisher(backends.amqp_url, topology, producer="test")
    yield publisher
    publisher.close()


def _store(dsn: str, events: list[OutgoingEvent]) -> None:
    with psycopg.connect(dsn) as conn, conn.cursor() as cur:
        add_all_to_outbox(cur, events, notify=False)


def _outbox_ids(dsn: str) -> list[str]:
    with psycopg.connect(dsn) as conn:
        return [row[0] for row in conn.execute("SELECT event_id FROM outbox ORDER BY id")]


def _received(backends: Backends, topology: Topology) -> list[str]:
    """Every message id in the test queue, taken off it, duplicates included."""
    connection = pika.BlockingConnection(pika.URLParameters(backends.amqp_url))
    channel = connection.channel()
    ids: list[str] = []
    while True:
        method, properties, _body = channel.basic_get(topology.queue("test", "relay"), auto_ack=True)
        if method is None:
            break
        ids.append(properties.message_id)
    connection.close()
    return ids


def test_a_batch_of_a_thousand_goes_with_every_row_removed_and_each_event_received_once(
    backends: Backends, topology: Topology, publisher: ConfirmingPublisher, pool: ConnectionPool, dsn: str
) -> None:
    events = [_event() for _ in range(1000)]
    _store(dsn, events)

    assert OutboxRelay(pool, publisher, batch_size=1000).relay_once() == 1000

    assert _outbox_ids(dsn) == []
    received = _received(backends, topology)
    assert sorted(received) == sorted(e.event_id for e in events)
    # One channel keeps publish order, and the relay publishes oldest first.
    assert received == [e.event_id for e in events]


def test_an_unroutable_event_stays_while_the_rest_of_its_batch_goes(
    backends: Backends, topology: Topology, publisher: ConfirmingPublisher, pool: ConnectionPool, dsn: str
) -> None:
    events = [_event(UNROUTED if n in (0, 57, 499) else ROUTED) for n in range(500)]
    unroutable = [e.event_id for e in events if e.routing_key == UNROUTED]
    _store(dsn, events)

    with pytest.raises(UnroutableEvent):
        OutboxRelay(pool, publisher, batch_size=500).relay_once()

    assert _outbox_ids(dsn) == unroutable
    assert sorted(_received(backends, topology)) == sorted(e.event_id for e in events if e.routing_key == ROUTED)


def test_the_running_relay_pages_past_events_no_queue_takes(
    backends: Backends, topology: Topology, publisher: ConfirmingPublisher, pool: ConnectionPool, dsn: str
) -> None:
    # A whole batch of the oldest rows is unroutable: the newer events behind it must still go.
    stuck = [_event(UNROUTED) for _ in range(10)]
    fresh = [_event() for _ in range(45)]
    _store(dsn, stuck + fresh)
    relay = OutboxRelay(pool, publisher, batch_size=10, poll_seconds=0.1)
    relay.start()
    try:
        received: list[str] = []

        def all_fresh_arrived() -> bool:
            received.extend(_received(backends, topology))
            return len(received) >= len(fresh)

        _wait_for(all_fresh_arrived)
        _wait_for(lambda: _outbox_ids(dsn) == [e.event_id for e in stuck])
    finally:
        relay.stop()
    assert sorted(received) == sorted(e.event_id for e in fresh)


def test_a_publisher_without_batches_is_used_one_event_at_a_time(pool: ConnectionPool, dsn: str) -> None:
    publisher = InMemoryPublisher()
    events = [_event() for _ in range(5)]
    _store(dsn, events)

    assert OutboxRelay(pool, publisher).relay_once() == 5

    assert [e.event_id for e in publisher.events] == [e.event_id for e in events]
    assert _outbox_ids(dsn) == []


def test_a_relay_that_cannot_reach_the_broker_removes_nothing(
    topology: Topology, pool: ConnectionPool, dsn: str
) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    publisher = ConfirmingPublisher(f"amqp://guest:guest@127.0.0.1:{port}/%2F", topology, producer="test")
    events = [_event() for _ in range(3)]
    _store(dsn, events)
    try:
        with pytest.raises(PublishError, match="broker unreachable"):
            OutboxRelay(pool, publisher).relay_once()
    finally:
        publisher.close()
    assert _outbox_ids(dsn) == [e.event_id for e in events]


@dataclass
class _Link:
    """One proxied connection: what the proxy let through so far."""

    client: socket.socket
    upstream: socket.socket
    publishes_forwarded: int = 0
    holding: bool = False
    acked_tags: set[int] = field(default_factory=set)


class PublishHoldingProxy:
    """Forwards connections to `target`. Once armed with `hold_after(n)`, each connection forwards its first `n`
    basic.publish frames and then holds everything it is sent (publishes included) until `cut()` drops every
    connection; after the cut it forwards freely again. It also records which delivery tags the broker acked."""

    def __init__(self, target: tuple[str, int]) -> None:
        self._target = target
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port: int = self._listener.getsockname()[1]
        self._links: list[_Link] = []
        self._lock = threading.Lock()
        self._hold_after: int | None = None
        self._closed = False
        threading.Thread(target=self._accept, daemon=True).start()

    def hold_after(self, publishes: int) -> None:
        self._hold_after = publishes

    def links(self) -> list[_Link]:
        with self._lock:
            return list(self._links)

    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            link = _Link(client, socket.create_connection(self._target))
            with self._lock:
                self._links.append(link)
            threading.Thread(target=self._client_to_broker, args=(link,), daemon=True).start()
            threading.Thread(target=self._broker_to_client, args=(link,), daemon=True).start()

    def _client_to_broker(self, link: _Link) -> None:
        pending = b""
        header_sent = False
        with contextlib.suppress(OSError):
            while data := link.client.recv(65536):
                pending += data
                out = bytearray()
                if not header_sent and len(pending) >= _PROTOCOL_HEADER:
                    out += pending[:_PROTOCOL_HEADER]
                    pending = pending[_PROTOCOL_HEADER:]
                    header_sent = True
                while header_sent and not link.holding and (frame_size := _complete_frame(pending)):
                    frame = pending[:frame_size]
                    if frame[0] == 1 and frame[7:11] == _BASIC_PUBLISH:
                        if self._hold_after is not None and link.publishes_forwarded >= self._hold_after:
                            link.holding = True
                            break
                        link.publishes_forwarded += 1
                    out += frame
                    pending = pending[frame_size:]
                if out:
                    link.upstream.sendall(out)
        _shut(link)

    def _broker_to_client(self, link: _Link) -> None:
        pending = b""
        with contextlib.suppress(OSError):
            while data := link.upstream.recv(65536):
                link.client.sendall(data)
                pending += data
                while frame_size := _complete_frame(pending):
                    frame, pending = pending[:frame_size], pending[frame_size:]
                    if frame[0] == 1 and frame[7:11] == _BASIC_ACK:
                        tag, multiple = int.from_bytes(frame[11:19], "big"), frame[19] & 1
                        link.acked_tags.update(range(1, tag + 1) if multiple else (tag,))
        _shut(link)

    def cut(self) -> None:
        self._hold_after = None
        with self._lock:
            links, self._links = self._links, []
        for link in links:
            _shut(link)

    def close(self) -> None:
        self._closed = True
        self._listener.close()
        self.cut()


def _complete_frame(pending: bytes) -> int:
    """The size of the whole AMQP frame at the start of `pending` (type, channel, size, payload, end), or 0."""
    if len(pending) < 7:
        return 0
    size = 7 + int.from_bytes(pending[3:7], "big") + 1
    return size if len(pending) >= size else 0


def _shut(link: _Link) -> None:
    for sock in (link.client, link.upstream):
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)
        with contextlib.suppress(OSError):
            sock.close()


def test_a_connection_cut_mid_batch_leaves_the_unconfirmed_rows_and_they_go_on_the_next_pass(
    backends: Backends, topology: Topology, pool: ConnectionPool, dsn: str
) -> None:
    broker = urlsplit(backends.amqp_url)
    proxy = PublishHoldingProxy((broker.hostname or "127.0.0.1", broker.port or 5672))
    through_proxy = urlunsplit(broker._replace(netloc=f"{broker.username}:{broker.password}@127.0.0.1:{proxy.port}"))
    publisher = ConfirmingPublisher(through_proxy, topology, producer="test")
    events = [_event() for _ in range(1000)]
    _store(dsn, events)
    relay = OutboxRelay(pool, publisher, batch_size=1000)
    try:
        proxy.hold_after(300)
        with ThreadPoolExecutor(max_workers=1) as executor:
            first_pass = executor.submit(relay.relay_once)

            # The broker got the first 300 publishes and the relay its acks for them; the other 700 are in flight.
            def first_300_acked() -> bool:
                return any(link.publishes_forwarded == 300 and len(link.acked_tags) >= 300 for link in proxy.links())

            _wait_for(first_300_acked)
            time.sleep(0.3)  # lets the relay's I/O thread read the last acks the proxy passed on
            assert not first_pass.done(), "the relay must still be waiting for the held publishes' confirms"
            proxy.cut()
            with pytest.raises(PublishError):
                first_pass.result(timeout=15)

        assert _outbox_ids(dsn) == [e.event_id for e in events[300:]]
        assert _received(backends, topology) == [e.event_id for e in events[:300]]

        def next_pass_relays_the_rest() -> bool:
            relay.relay_batch(after_id=0)  # the publisher reconnects by itself; until then the pass fails
            return _outbox_ids(dsn) == []

        _wait_for(next_pass_relays_the_rest)

        assert sorted(_received(backends, topology)) == sorted(e.event_id for e in events[300:])
    finally:
        publisher.close()
        proxy.close()
