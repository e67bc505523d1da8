"""Engagement resumed: after notify reports a supportive enquiry sent, the student's next engagement from any source
(an ingest batch, an attendance mark, or engagement stored before the status arrived) adds one history line and
publishes CaseUpdated (CASE_CHANGE_ENGAGEMENT_RESUMED) once per enquiry, for an open case only."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime

import psycopg
from psycopg_pool import ConnectionPool
from tend.indicators.v1 import events_pb2
from tend.notify.v1 import events_pb2 as notify_events_pb2
from tend.notify.v1 import notify_pb2

from services.indicators.tests.histories import RUN, at
from tend_common.messaging.consumer import Delivery
from tend_common.messaging.envelope import envelope, new_meta
from tend_indicators import attendance, case_store, enquiry_status
from tend_indicators.ingest.records import EngagementRecord, store_records

SENT_AT = datetime(2026, 3, 2, 14, 30, tzinfo=UTC)
NOW = datetime(2026, 3, 4, 12, tzinfo=UTC)


def open_case(pool: ConnectionPool, pseudonym: str = "p_s00") -> uuid.UUID:
    with pool.connection() as conn, conn.transaction(), conn.cursor() as cur:
        case_id, _opened = case_store.open_case(cur, pseudonym, SENT_AT)
    return case_id


def sent(pool: ConnectionPool, case_id: uuid.UUID, request_id: str = "req-1", pseudonym: str = "p_s00") -> None:
    message = notify_events_pb2.EnquiryDeliveryUpdated(
        meta=new_meta("notify", occurred_at=SENT_AT),
        request_id=request_id,
        case_id=str(case_id),
        student_pseudonym=pseudonym,
        status=notify_pb2.DELIVERY_STATUS_SENT,
        attempts=1,
    )
    event = envelope(message, enquiry_status.DELIVERY_UPDATED)
    delivery = Delivery(event.routing_key, event.event_id, event.type_name, 1, event.body, False)
    enquiry_status.handler(pool, clock=lambda: NOW)(delivery)


def engage(pool: ConnectionPool, key: str, when: datetime, pseudonym: str = "p_s00", source: str = "vle") -> None:
    with pool.connection() as conn, conn.transaction(), conn.cursor() as cur:
        store_records(cur, [EngagementRecord(key, pseudonym, RUN, source, "viewed", when)])


def resumed(dsn: str) -> list[tuple[str, str]]:
    """(history line, enquiry request id) of the engagement-resumed lines, and checks each has its event."""
    with psycopg.connect(dsn) as conn:
        lines = conn.execute(
            "SELECT text, enquiry_request_id FROM case_entries WHERE text LIKE 'Engaged again%' ORDER BY entry_id"
        ).fetchall()
        bodies = conn.execute(
            "SELECT body FROM case_event_outbox WHERE routing_key = 'indicators.case_updated.v1' ORDER BY id"
        ).fetchall()
    updates = [events_pb2.CaseUpdated.FromString(bytes(row[0])) for row in bodies]
    changes = [u for u in updates if u.change == events_pb2.CASE_CHANGE_ENGAGEMENT_RESUMED]
    assert [u.meta.request_id for u in changes] == [request_id for _text, request_id in lines]
    return lines


def test_engagement_after_the_send_is_noted_once_per_enquiry(pool: ConnectionPool, dsn: str) -> None:
    case_id = open_case(pool)
    sent(pool, case_id)
    engage(pool, "before", datetime(2026, 3, 2, 9, tzinfo=UTC))  # the same day, but before the send
    engage(pool, "other-student", datetime(2026, 3, 3, 9, tzinfo=UTC), pseudonym="p_s01")
    assert resumed(dsn) == []
    engage(pool, "library", datetime(2026, 3, 3, 9, tzinfo=UTC), source="library")
    engage(pool, "again", datetime(2026, 3, 4, 9, tzinfo=UTC))
    sent(pool, case_id)  # another status for the same enquiry
    assert resumed(dsn) == [("Engaged again on 3 Mar 2026 after the enquiry.", "req-1")]
    with psycopg.connect(dsn) as conn:
        event = conn.execute(
            "SELECT body FROM case_event_outbox WHERE routing_key = 'indicators.case_updated.v1'"
        ).fetchone()
    assert event is not None
    update = events_pb2.CaseUpdated.FromString(bytes(event[0]))
    assert (update.case_id, update.student_pseudonym) == (str(case_id), "p_s00")


def test_an_attendance_mark_after_the_send_counts(pool: ConnectionPool, dsn: str) -> None:
    sent(pool, open_case(pool))
    mark = attendance.AttendanceMark(
        event_id="checkin-1",
        session_id=uuid.uuid4(),
        student_pseudonym="p_s00",
        module_run_id=RUN,
        session_starts_at=at(date(2026, 3, 5), 9),
        recorded_at=at(date(2026, 3, 5), 9),
        source="code",
    )
    with pool.connection() as conn, conn.transaction(), conn.cursor() as cur:
        attendance.store_attendance(cur, mark, now=NOW)
    assert resumed(dsn) == [("Engaged again on 5 Mar 2026 after the enquiry.", "req-1")]


def test_engagement_stored_before_notify_reported_the_send_counts_when_it_does(pool: ConnectionPool, dsn: str) -> None:
    case_id = open_case(pool)
    engage(pool, "early-arrival", datetime(2026, 3, 3, 9, tzinfo=UTC))
    assert resumed(dsn) == []
    sent(pool, case_id)
    assert resumed(dsn) == [("Engaged again on 3 Mar 2026 after the enquiry.", "req-1")]


def test_each_enquiry_is_answered_once_and_a_closed_case_gets_nothing(pool: ConnectionPool, dsn: str) -> None:
    first = open_case(pool)
    sent(pool, first, "req-1")
    sent(pool, first, "req-2")
    closed = open_case(pool, "p_s01")
    sent(pool, closed, "req-3", pseudonym="p_s01")
    with psycopg.connect(dsn) as conn:
        conn.execute("UPDATE cases SET status = 'closed' WHERE case_id = %s", (closed,))
    engage(pool, "both", datetime(2026, 3, 3, 9, tzinfo=UTC))
    engage(pool, "closed-case", datetime(2026, 3, 3, 9, tzinfo=UTC), pseudonym="p_s01")
    assert sorted(resumed(dsn)) == [
        ("Engaged again on 3 Mar 2026 after the enquiry.", "req-1"),
        ("Engaged again on 3 Mar 2026 after the enquiry.", "req-2"),
    ]
