"""Messaging figures: confirmed publishes per second on one channel, and attendance events applied per second by
indicators' real consumer (each committed with its event id before acknowledgement)."""

from __future__ import annotations

import statistics
import time
import uuid
from datetime import UTC, datetime

import psycopg
from psycopg_pool import ConnectionPool
from tend.checkin.v1 import events_pb2

from bench.environment import BenchEnvironment, delete_queues
from tend_common.messaging.consumer import Consumer
from tend_common.messaging.envelope import OutgoingEvent, envelope, new_meta, timestamp
from tend_common.messaging.publisher import ConfirmingPublisher
from tend_common.messaging.topology import Topology, declare_consumer_queue
from tend_indicators.__main__ import attendance_handler
from tend_indicators.attendance import ROUTING_KEY

RUNS = 5
EVENTS_PER_RUN = 2000


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
    dsn = environment.database("tend_indicators.migrations")
    publish_rates, apply_rates = [], []
    try:
        import pika

        connection = pika.BlockingConnection(pika.URLParameters(amqp_url))
        declare_consumer_queue(connection.channel(), topology, queue, [ROUTING_KEY])
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
        publisher.close()
        pool.close()
    finally:
        delete_queues(amqp_url, [queue, topology.dead_letter_queue(queue)])
    return {
        "plumbing.confirmed_publish_per_s": statistics.median(publish_rates),
        "indicators.attendance_apply_per_s": statistics.median(apply_rates),
    }


def _count(conn: psycopg.Connection[tuple[int]]) -> int:
    row = conn.execute("SELECT count(*) FROM attendance").fetchone()
    return int(row[0]) if row else 0
