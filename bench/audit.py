"""Audit figures.

- `audit.append_per_s`: events per second end to end, from the first publish to the last record committed: a
  pipelined producer publishes (with publisher confirms) to the real `tend-audit serve` process, which consumes in
  batches, appends to the chain and the Merkle tree, and signs tree heads. Median of RUNS runs.
- `audit.verify_1m_s`: seconds to verify a log of one million records (every leaf, column, chain link, tree node and
  signed tree head). The records are built with the real append code straight into the database, not through the
  broker. Median of VERIFY_RUNS runs over the same log.
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from pathlib import Path

import pika
import psycopg
from pika.adapters.select_connection import SelectConnection
from pika.channel import Channel
from pika.frame import Method
from pika.spec import Basic

from bench.environment import BenchEnvironment, delete_queues
from tend_audit import records, tree_heads
from tend_audit.signing import load_signing_key
from tend_audit.verify import verify_log
from tend_common.audit_client import Actor, Subject, audit_event
from tend_common.messaging.envelope import CONTENT_TYPE, OutgoingEvent
from tend_common.messaging.topology import Topology
from tend_testing.processes import ServiceProcess, free_port

RUNS = 3
EVENTS_PER_RUN = 20_000
VERIFY_RECORDS = 1_000_000
VERIFY_RUNS = 3
BUILD_BATCH = 10_000
TREE_HEAD_EVERY = 10_000
IN_FLIGHT = 2_000


def _events(count: int, run: int) -> list[OutgoingEvent]:
    return [
        audit_event(
            Actor.person(f"staff-{n % 613}"),
            "student.view",
            Subject("person", f"student-{n % 30011}"),
            "engagement support",
            "allowed",
            "bench",
            request_id=f"bench-{run}-{n}",
        )
        for n in range(count)
    ]


class PipelinedProducer:
    """Publishes events on one channel with up to IN_FLIGHT unconfirmed at a time; `run` returns once the broker has
    confirmed every one (a nack or a lost connection is an error: the figure would be meaningless)."""

    def __init__(self, amqp_url: str, topology: Topology, events: Sequence[OutgoingEvent]) -> None:
        self._params = pika.URLParameters(amqp_url)
        self._exchange = topology.events_exchange
        self._events = events
        self._next = 0
        self._outstanding: set[int] = set()
        self._confirmed = 0
        self._channel: Channel | None = None
        self.error: str | None = None

    def run(self) -> None:
        connection = SelectConnection(
            self._params, on_open_callback=self._on_open, on_close_callback=lambda c, _r: c.ioloop.stop()
        )
        connection.ioloop.start()
        if self.error or self._confirmed != len(self._events):
            raise RuntimeError(self.error or "the producer's connection closed before every event was confirmed")

    def _on_open(self, connection: SelectConnection) -> None:
        connection.channel(on_open_callback=self._on_channel)

    def _on_channel(self, channel: Channel) -> None:
        self._channel = channel
        channel.confirm_delivery(ack_nack_callback=self._on_confirm, callback=lambda _frame: self._publish())

    def _publish(self) -> None:
        assert self._channel is not None
        while self._next < len(self._events) and len(self._outstanding) < IN_FLIGHT:
            event = self._events[self._next]
            self._channel.basic_publish(
                self._exchange,
                event.routing_key,
                event.body,
                pika.BasicProperties(
                    content_type=CONTENT_TYPE,
                    delivery_mode=pika.DeliveryMode.Persistent,
                    message_id=event.event_id,
                    type=event.type_name,
                    app_id="bench",
                    headers={"schema_version": event.schema_version},
                ),
            )
            self._next += 1
            self._outstanding.add(self._next)

    def _on_confirm(self, frame: Method) -> None:
        method = frame.method
        if isinstance(method, Basic.Nack):
            self.error = "the broker refused an event"
        tag = method.delivery_tag
        done = {t for t in self._outstanding if t <= tag} if method.multiple else {tag} & self._outstanding
        self._outstanding -= done
        self._confirmed += len(done)
        if self.error or self._confirmed == len(self._events):
            assert self._channel is not None
            self._channel.connection.close()
        else:
            self._publish()


def _logged(dsn: str) -> int:
    with psycopg.connect(dsn) as conn:
        row = conn.execute("SELECT seq FROM audit_log_head").fetchone()
    return int(row[0]) if row else 0


def _append_rate(environment: BenchEnvironment) -> float:
    amqp_url = environment.backends.amqp_url
    topology = Topology(environment.amqp_namespace)
    dsn = environment.database("tend_audit.migrations")
    port = free_port()
    env = {
        "TEND_AUDIT_DATABASE_URL": dsn,
        "TEND_AUDIT_AMQP_URL": amqp_url,
        "TEND_AUDIT_AMQP_NAMESPACE": environment.amqp_namespace,
        "TEND_AUDIT_GRPC_PORT": str(port),
        "TEND_AUDIT_METRICS_PORT": "0",
        "TEND_AUDIT_LOG_LEVEL": "WARNING",
    }
    queue = topology.queue("audit", "records")
    rates: list[float] = []
    with tempfile.TemporaryDirectory() as logs:
        audit = ServiceProcess("audit", [sys.executable, "-m", "tend_audit", "serve"], env, Path(logs))
        try:
            audit.start().wait_grpc(port)
            for run in range(RUNS):
                events = _events(EVENTS_PER_RUN, run)
                target = _logged(dsn) + EVENTS_PER_RUN
                producer = PipelinedProducer(amqp_url, topology, events)
                started = time.perf_counter()
                publishing = threading.Thread(target=producer.run)
                publishing.start()
                while _logged(dsn) < target:
                    if not audit.running:
                        raise RuntimeError(f"audit exited:\n{audit.read_log()[-2000:]}")
                    time.sleep(0.02)
                rates.append(EVENTS_PER_RUN / (time.perf_counter() - started))
                publishing.join()
        finally:
            audit.terminate()
            delete_queues(amqp_url, [queue, topology.dead_letter_queue(queue)])
    return statistics.median(rates)


def _build_log(dsn: str, count: int) -> None:
    """`count` valid records through the real append code, in large transactions, with signed tree heads."""
    with psycopg.connect(dsn) as conn:
        key = load_signing_key(conn, "")
        for start in range(0, count, BUILD_BATCH):
            batch = [records.record_from_body(e.body) for e in _events(min(BUILD_BATCH, count - start), start)]
            with conn.transaction(), conn.cursor() as cur:
                records.append_batch(cur, batch)
            if (start + BUILD_BATCH) % TREE_HEAD_EVERY == 0:
                tree_heads.sign_current(conn, key)


def _verify_time(environment: BenchEnvironment) -> float:
    dsn = environment.database("tend_audit.migrations")
    _build_log(dsn, VERIFY_RECORDS)
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("VACUUM ANALYZE")
    times: list[float] = []
    for _ in range(VERIFY_RUNS):
        with psycopg.connect(dsn) as conn:
            started = time.perf_counter()
            result = verify_log(conn, dsn=dsn)
            times.append(time.perf_counter() - started)
        if not result.ok or result.records_checked != VERIFY_RECORDS:
            raise RuntimeError(f"the built log did not verify: {result}")
    return statistics.median(times)


def run(environment: BenchEnvironment) -> dict[str, float]:
    return {
        "audit.append_per_s": _append_rate(environment),
        "audit.verify_1m_s": _verify_time(environment),
    }
