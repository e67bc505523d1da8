"""Checkin's AttendanceWithdrawn: a withdrawn mark is removed once, in whichever order the mark and the withdrawal
arrive (they travel on separate queues); through the real broker; and the recompute that follows raises a flag the
removed attendance had hidden, and withdraws it again when a later correction marks the student present."""

from __future__ import annotations

import itertools
import time
import uuid
from datetime import UTC, date, datetime

import psycopg
import pytest
from psycopg_pool import ConnectionPool
from tend.checkin.v1 import events_pb2

from services.indicators.tests.histories import CONFIG, NOW, OPTIONS, RUN, at
from tend_common.messaging.consumer import Consumer, Delivery, PoisonMessage
from tend_common.messaging.envelope import OutgoingEvent, envelope, new_meta, timestamp
from tend_common.messaging.publisher import ConfirmingPublisher
from tend_common.messaging.topology import Topology
from tend_indicators import attendance, attendance_withdrawn
from tend_indicators.directory import IdentityDirectory
from tend_indicators.history_store import load_population
from tend_indicators.recompute import recompute
from tend_indicators.service import attendance_handler
from tend_testing.backends import Backends

SESSION = uuid.UUID("6a1f0c52-3d4e-4b7a-9e21-0f5c8d7b6a31")
STARTS = at(date(2026, 2, 5), 9)


def mark(recorded_at: datetime, event_id: str, pseudonym: str = "p_s00") -> OutgoingEvent:
    message = events_pb2.AttendanceRecorded(
        meta=new_meta("checkin", event_id=event_id, occurred_at=recorded_at),
        session_id=str(SESSION),
        module_run_id=RUN,
        student_pseudonym=pseudonym,
        recorded_at=timestamp(recorded_at),
        session_starts_at=timestamp(STARTS),
        source=events_pb2.ATTENDANCE_SOURCE_CODE,
    )
    return envelope(message, attendance.ROUTING_KEY)


def withdrawal(withdrawn_at: datetime, event_id: str, pseudonym: str = "p_s00", session: str = "") -> OutgoingEvent:
    message = events_pb2.AttendanceWithdrawn(
        meta=new_meta("checkin", event_id=event_id, occurred_at=withdrawn_at),
        session_id=session or str(SESSION),
        module_run_id=RUN,
        student_pseudonym=pseudonym,
        withdrawn_at=timestamp(withdrawn_at),
        session_starts_at=timestamp(STARTS),
    )
    return envelope(message, attendance_withdrawn.ROUTING_KEY)


def delivery(event: OutgoingEvent, schema_version: int = 1) -> Delivery:
    return Delivery(event.routing_key, event.event_id, event.type_name, schema_version, event.body, False)


def apply(pool: ConnectionPool, event: OutgoingEvent) -> None:
    if event.routing_key == attendance.ROUTING_KEY:
        attendance_handler(pool)(delivery(event))
    else:
        attendance_withdrawn.handler(pool)(delivery(event))


def present(dsn: str) -> list[tuple[str, str]]:
    with psycopg.connect(dsn) as conn:
        return conn.execute("SELECT student_pseudonym, source FROM attendance").fetchall()


FIRST = mark(at(date(2026, 2, 5), 9), "checked-in")
WITHDRAWN = withdrawal(at(date(2026, 2, 6), 12), "correction-absent")
MARKED_AGAIN = mark(at(date(2026, 2, 9), 12), "correction-present")


@pytest.mark.parametrize("order", list(itertools.permutations([FIRST, WITHDRAWN])))
def test_a_withdrawal_removes_the_mark_it_follows_in_either_order(
    pool: ConnectionPool, dsn: str, order: tuple[OutgoingEvent, ...]
) -> None:
    for event in (*order, *order):  # and each delivered twice
        apply(pool, event)
    assert present(dsn) == []


@pytest.mark.parametrize("order", list(itertools.permutations([FIRST, WITHDRAWN, MARKED_AGAIN])))
def test_a_mark_recorded_after_the_withdrawal_stands_in_any_order(
    pool: ConnectionPool, dsn: str, order: tuple[OutgoingEvent, ...]
) -> None:
    for event in order:
        apply(pool, event)
    assert present(dsn) == [("p_s00", "code")]
    with psycopg.connect(dsn) as conn:
        kept = conn.execute("SELECT event_id FROM attendance").fetchone()
    assert kept == ("correction-present",)


def test_a_withdrawal_for_another_student_changes_nothing(pool: ConnectionPool, dsn: str) -> None:
    apply(pool, FIRST)
    apply(pool, withdrawal(at(date(2026, 2, 6)), "other", pseudonym="p_s01"))
    assert present(dsn) == [("p_s00", "code")]


@pytest.mark.parametrize(
    ("event", "reason"),
    [
        (delivery(WITHDRAWN, schema_version=2), "unsupported schema version 2"),
        (Delivery(attendance_withdrawn.ROUTING_KEY, "id", "", 1, b"\xff\xff", False), "not an AttendanceWithdrawn"),
        (delivery(withdrawal(at(date(2026, 2, 6)), "e", session="nope")), "session_id is not a UUID"),
        (delivery(withdrawal(at(date(2026, 2, 6)), "e", pseudonym="")), "missing student_pseudonym"),
    ],
)
def test_withdrawals_that_can_never_apply_are_poison(event: Delivery, reason: str) -> None:
    with pytest.raises(PoisonMessage, match=reason):
        attendance_withdrawn.parse_withdrawal(event)


def test_the_consumer_applies_withdrawals_from_the_broker(
    backends: Backends, amqp_namespace: str, pool: ConnectionPool, dsn: str
) -> None:
    apply(pool, FIRST)
    topology = Topology(amqp_namespace)
    consumer = Consumer(
        backends.amqp_url,
        topology,
        topology.queue("indicators", attendance_withdrawn.QUEUE_PURPOSE),
        [attendance_withdrawn.ROUTING_KEY],
        attendance_withdrawn.handler(pool),
    )
    consumer.declare()
    publisher = ConfirmingPublisher(backends.amqp_url, topology, "checkin")
    publisher.publish(WITHDRAWN)
    publisher.close()
    consumer.start()
    try:
        deadline = time.monotonic() + 15
        while present(dsn) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert present(dsn) == []
    finally:
        consumer.stop()


def flags(dsn: str) -> list[tuple[str, str, str]]:
    with psycopg.connect(dsn) as conn:
        return conn.execute(
            "SELECT student_pseudonym, rule, status FROM flags WHERE student_pseudonym = 'p_s00'"
        ).fetchall()


def test_removed_attendance_raises_the_flag_it_hid_and_a_later_mark_withdraws_it(
    pool: ConnectionPool, directory: IdentityDirectory, cohort: list[str], dsn: str
) -> None:
    # p_s00's VLE activity stops on 30 Jan; a check-in on 5 Feb keeps the gap under 14 days on 16 Feb.
    apply(pool, FIRST)
    recompute(pool, directory, CONFIG, OPTIONS, date(2026, 2, 16), now=NOW)
    assert flags(dsn) == []
    # Staff mark the student absent (the check-in was made for someone else): the gap is now 17 days.
    apply(pool, WITHDRAWN)
    assert recompute(pool, directory, CONFIG, OPTIONS, date(2026, 2, 16), now=NOW).raised == 1
    assert flags(dsn) == [("p_s00", "no_engagement", "raised")]
    # The session still counts as held: an expected contact point, missed.
    with pool.connection() as conn:
        population = load_population(conn, date(2026, 2, 16), OPTIONS.timezone, OPTIONS.default_institution)
    assert str(SESSION) in {s.session_id for s in population.runs[RUN].sessions}
    # Staff change their minds again: present after all. The flag's evidence is gone, so it is withdrawn.
    apply(pool, MARKED_AGAIN)
    assert (
        recompute(pool, directory, CONFIG, OPTIONS, date(2026, 2, 17), now=datetime(2026, 2, 17, tzinfo=UTC)).withdrawn
        == 1
    )
    assert flags(dsn) == [("p_s00", "no_engagement", "withdrawn")]
    with psycopg.connect(dsn) as conn:
        assert conn.execute("SELECT status FROM cases").fetchall() == [("closed",)]
