"""Notify's figures: e-mails handed to a local SMTP server per second.

- `notify.emails_per_s`: the sending stage alone. Enquiries are queued in the database as the intake queues them,
  then a real `tend-notify serve` process sends them: its sending threads (16, each reusing one SMTP connection and
  taking up to 8 due messages at a time) resolve the addresses through identity (a fake over real gRPC, in this
  process), render, record each attempt before and after, and hand the messages to a local SMTP sink running as its
  own process (`tend-notify smtp-sink`). Counted from the tenth message to the last, so start-up is left out.
  Target: at least 200 per second.
- `notify.end_to_end_per_s`: the whole path through a real `tend-notify serve` process: gRPC RequestEnquiry calls from
  16 threads, the outbox, the broker, the intake, the sending threads, the SMTP sink; from the first request to the
  last message received.
"""

from __future__ import annotations

import os
import shutil
import statistics
import tempfile
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path

import psycopg
from psycopg_pool import ConnectionPool

from bench.environment import BenchEnvironment, delete_queues
from services.notify.tests.fake_identity import FakeIdentity
from services.notify.tests.process_harness import NotifyProcess, smtp_sink
from tend_common.messaging.consumer import Delivery
from tend_common.messaging.envelope import OutgoingEvent
from tend_common.messaging.topology import Topology
from tend_notify.events import CASE_STATUS_CONSUMER, EnquiryRequest, enquiry_requested
from tend_notify.intake import enquiry_handler

RUNS = 3
MESSAGES = 1000
END_TO_END_MESSAGES = 600
THREADS = 16


def _delivered(directory: Path) -> int:
    """Messages the sink has written so far: counted by name, since the directory holds thousands by the last run
    and this runs in the process that also serves the fake identity."""
    with os.scandir(directory) as entries:
        return sum(1 for entry in entries if entry.name.endswith(".eml"))


def _wait_for(directory: Path, count: int, timeout: float = 300.0) -> float:
    deadline = time.monotonic() + timeout
    while _delivered(directory) < count:
        if time.monotonic() > deadline:
            raise RuntimeError(f"only {_delivered(directory)} of {count} messages arrived")
        # Often enough for a figure within 1% at 200 per second, seldom enough not to take the CPU it measures.
        time.sleep(0.05)
    return time.perf_counter()


def _no_quiet_hours(dsn: str) -> None:
    with psycopg.connect(dsn) as conn:
        conn.execute("UPDATE institutions SET quiet_hours_start = '00:00', quiet_hours_end = '00:00'")


def _steady_rate(directory: Path, already: int, count: int) -> float:
    """Messages per second from the tenth of `count` to the last, so that start-up is not counted."""
    first = already + count // 10
    _wait_for(directory, first)
    started = time.perf_counter()
    finished = _wait_for(directory, already + count)
    return (count - count // 10) / (finished - started)


def _sending_run(environment: BenchEnvironment, port: int, directory: Path) -> float:
    """Queues the enquiries as the intake would, then starts a real notify process to send them."""
    dsn = environment.database("tend_notify.migrations")
    _no_quiet_hours(dsn)
    identity = FakeIdentity()
    identity.start()
    notify = NotifyProcess(
        environment.backends,
        dsn,
        environment.amqp_namespace,
        f"bench:{uuid.uuid4().hex[:8]}:",
        identity,
        None,
        Path(tempfile.mkdtemp(prefix="logs-", dir=directory)),
        _process_settings(port),
    )
    pool = ConnectionPool(dsn, min_size=1, max_size=2, open=True)
    try:
        queue = enquiry_handler(pool)
        now = datetime.now(UTC)
        for _ in range(MESSAGES):
            tutor = identity.add_staff("Dr Bench Tutor", "tutor@example.ac.uk")
            student = identity.add_student("Bench Student", "student@students.example.ac.uk")
            request = EnquiryRequest(
                uuid.uuid4(), "default", student, "case", tutor, "supportive_enquiry",
                "How are things going, {student_name}?",
                "Dear {student_name},\n\nHow are you? I can help.\n\n{support_url}\n\n{sender_name}", now,
            )  # fmt: skip
            event: OutgoingEvent = enquiry_requested(request)
            queue(Delivery(event.routing_key, event.event_id, event.type_name, 1, event.body, False))
        with psycopg.connect(dsn) as conn:
            # The intake ran here, in place of the broker: its events are not part of what is measured.
            conn.execute("DELETE FROM outbox")
        already = _delivered(directory)
        notify.start()
        return _steady_rate(directory, already, MESSAGES)
    finally:
        notify.stop()
        identity.stop()
        pool.close()


def _process_settings(port: int) -> dict[str, str]:
    return {
        "TEND_NOTIFY_SMTP_PORT": str(port),
        "TEND_NOTIFY_SMTP_CONNECTIONS": str(THREADS),
        "TEND_NOTIFY_GLOBAL_LIMIT_PER_MINUTE": "1000000",
    }


def _end_to_end_run(environment: BenchEnvironment, port: int, directory: Path) -> float:
    dsn = environment.database("tend_notify.migrations")
    identity = FakeIdentity()
    identity.start()
    notify = NotifyProcess(
        environment.backends,
        dsn,
        environment.amqp_namespace,
        f"bench:{uuid.uuid4().hex[:8]}:",
        identity,
        None,
        Path(tempfile.mkdtemp(prefix="logs-", dir=directory)),
        _process_settings(port),
    )
    try:
        notify.start()
        pairs = [notify.tutor_with_tutee(n) for n in range(END_TO_END_MESSAGES)]
        already = _delivered(directory)
        started = time.perf_counter()
        with ThreadPoolExecutor(max_workers=THREADS) as pool:
            list(pool.map(lambda pair: notify.request_enquiry(*pair), pairs))
        finished = _wait_for(directory, already + END_TO_END_MESSAGES)
        return END_TO_END_MESSAGES / (finished - started)
    finally:
        notify.stop()
        identity.stop()


def run(environment: BenchEnvironment) -> dict[str, float]:
    sending, end_to_end = [], []
    directory = Path(tempfile.mkdtemp(prefix="notify-bench-"))
    topology = Topology(environment.amqp_namespace)
    queues = [topology.queue("notify", "enquiries"), topology.queue(*CASE_STATUS_CONSUMER)]
    try:
        with smtp_sink(directory) as port:
            for _ in range(RUNS):
                sending.append(_sending_run(environment, port, directory))
            for _ in range(RUNS):
                end_to_end.append(_end_to_end_run(environment, port, directory))
    finally:
        delete_queues(environment.backends.amqp_url, [*queues, *map(Topology.dead_letter_queue, queues)])
        shutil.rmtree(directory, ignore_errors=True)
    return {
        "notify.emails_per_s": round(statistics.median(sending), 1),
        "notify.end_to_end_per_s": round(statistics.median(end_to_end), 1),
    }
