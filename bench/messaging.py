"""Messaging figures: confirmed publishes per second on one channel, attendance events applied per second by
indicators' real consumer (each committed with its event id before acknowledgement), and events per second the
outbox relay moves from the outbox table to the broker (confirmed and deleted), with its CPU time per event (all
threads of this process: the relay's and its publisher's I/O thread)."""

from __future__ import annotations

import dataclasses
import statistics
import time
import uuid
from datetime import UTC, datetime

import pika
import psycopg
from psycopg_pool import ConnectionPool
from tend.checkin.v1 import events_pb2

from bench.environment import BenchEnvironment, delete_queues
from tend_common.messaging.consumer import Consumer
from tend_common.messaging.envelope import OutgoingEvent, envelope, new_meta, timestamp
from tend_common.messaging.outbox import OutboxRelay, add_all_to_outbox
from tend_common.messaging.publisher import ConfirmingPublisher
from tend_common.messaging.topology import Topology, declare_consumer_queue
from tend_indicators.__main__ import attendance_handler
from tend_indicators.attendance import ROUTING_KEY

RUNS = 5
EVENTS_PER_RUN = 2000
RELAYED_PER_RUN = 5000
# Relayed events go to a queue of their own, so indicators' consumer above never sees them.
RELAY_ROUTING_KEY = "bench.relayed.v1"


def _events(count: int) -> list[OutgoingEvent]:
    now = timestamp(datetime.now(UTC))
    session = str(uuid.uuid4())
    return [
        envelope(
            events_pb2.AttendanceRecorded(
                meta=new_meta("bench"),
                session_id=session,
                module_run_id="bench",
                student_pseudonym=f"p_{n}",
                recorded_at=now,
                session_starts_at=now,
                source=events_pb2.ATTENDANCE_SOURCE_CODE,
            ),
            ROUTING_KEY,
        )
        for n in range(count)
    ]


def run(environment: BenchEnvironment) -> dict[str, float]:
    amqp_url = environment.backends.amqp_url
    topology = Topology(environment.amqp_namespace)
    queue = topology.queue("indicators", "attendance")
    relay_queue = topology.queue("bench", "relayed")
    dsn = environment.database("tend_indicators.migrations")
    publish_rates, apply_rates = [], []
    relay_rates, relay_cpu = [], []
    try:
        connection = pika.BlockingConnection(pika.URLParameters(amqp_url))
        declare_consumer_queue(connection.channel(), topology, queue, [ROUTING_KEY])
        declare_consumer_queue(connection.channel(), topology, relay_queue, [RELAY_ROUTING_KEY])
        connection.close()
        publisher = ConfirmingPublisher(amqp_url, topology, "bench")
        pool = ConnectionPool(dsn, min_size=1, max_size=4, open=True)
        for _ in range(RUNS):
            events = _events(EVENTS_PER_RUN)
            started = time.perf_counter()
            for event in events:
                publisher.publish(event)
            publish_rates.append(EVENTS_PER_RUN / (time.perf_counter() - started))
            with psycopg.connect(dsn) as conn:
                before = _count(conn)
                consumer = Consumer(amqp_url, topology, queue, [ROUTING_KEY], attendance_handler(pool), prefetch=200)
                started = time.perf_counter()
                consumer.start()
                while _count(conn) < before + EVENTS_PER_RUN:
                    time.sleep(0.01)
                apply_rates.append(EVENTS_PER_RUN / (time.perf_counter() - started))
                consumer.stop()
        relay = OutboxRelay(pool, publisher)
        for _ in range(RUNS):
            rate, cpu_per_event = _relay_run(dsn, relay)
            relay_rates.append(rate)
            relay_cpu.append(cpu_per_event)
            _purge(amqp_url, relay_queue)
        publisher.close()
        pool.close()
    finally:
        delete_queues(
            amqp_url, [queue, topology.dead_letter_queue(queue), relay_queue, topology.dead_letter_queue(relay_queue)]
        )
    return {
        "plumbing.confirmed_publish_per_s": statistics.median(publish_rates),
        "indicators.attendance_apply_per_s": statistics.median(apply_rates),
        "plumbing.outbox_relay_per_s": statistics.median(relay_rates),
        "plumbing.outbox_relay_cpu_us_per_event": statistics.median(relay_cpu),
    }


def _relay_run(dsn: str, relay: OutboxRelay) -> tuple[float, float]:
    """Stores RELAYED_PER_RUN events, then relays them all: events per second, and CPU microseconds per event."""
    events = [dataclasses.replace(event, routing_key=RELAY_ROUTING_KEY) for event in _events(RELAYED_PER_RUN)]
    with psycopg.connect(dsn) as conn, conn.cursor() as cur:
        add_all_to_outbox(cur, events, notify=False)
    relayed = 0
    started, cpu_started = time.perf_counter(), time.process_time()
    while relayed < RELAYED_PER_RUN:
        relayed += relay.relay_once()
    elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu_started
    return relayed / elapsed, cpu / relayed * 1e6


def _purge(amqp_url: str, queue: str) -> None:
    connection = pika.BlockingConnection(pika.URLParameters(amqp_url))
    connection.channel().queue_purge(queue)
    connection.close()


def _count(conn: psycopg.Connection[tuple[int]]) -> int:
    row = conn.execute("SELECT count(*) FROM attendance").fetchone()
    return int(row[0]) if row else 0
