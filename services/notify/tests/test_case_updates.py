"""Indicators' CaseUpdated, through the real broker: the student engaging again, or the case being closed, stops the
reminders and escalations of the case's enquiries, once however often the event is delivered, with the reason kept
for the enquiry's status; any other change is acknowledged and changes nothing."""

from __future__ import annotations

import time
import uuid
from datetime import datetime, timedelta

import psycopg
from tend.indicators.v1 import events_pb2 as indicators_events_pb2

from services.notify.tests.conftest import Notify, delivery_of
from tend_common.messaging.consumer import Consumer
from tend_common.messaging.envelope import OutgoingEvent, envelope, new_meta
from tend_common.messaging.publisher import ConfirmingPublisher
from tend_common.messaging.topology import Topology
from tend_notify import follow_up_store
from tend_notify.case_updates import CONSUMER_NAME, QUEUE_PURPOSE, case_update_handler
from tend_notify.events import CASE_UPDATED, SERVICE
from tend_notify.follow_up import FollowUps
from tend_notify.transport import DEFERRED, SendOutcome
from tend_testing.backends import Backends

DAY = timedelta(days=1)


def _case_updated(case_id: str, change: int, at: datetime, event_id: str | None = None) -> OutgoingEvent:
    return envelope(
        indicators_events_pb2.CaseUpdated(
            meta=new_meta("indicators", event_id=event_id or str(uuid.uuid4()), occurred_at=at),
            case_id=case_id,
            student_pseudonym="p_whoever",
            change=change,  # type: ignore[arg-type]
            raised_flags=0,
        ),
        CASE_UPDATED,
    )


def _enquiry(notify: Notify, case_id: str) -> uuid.UUID:
    student = notify.identity.add_student("Quillon Tutee", f"{case_id}@students.example.ac.uk")
    notify.identity.allow_enquiry(notify.sender, student)
    return notify.request(student_pseudonym=student, case_id=case_id).request_id


def _stopped(notify: Notify) -> dict[str, str | None]:
    with psycopg.connect(notify.settings.database_url) as conn:
        rows = conn.execute("SELECT case_id, stopped_reason FROM follow_ups").fetchall()
    return {str(case): reason for case, reason in rows}


def _applied(notify: Notify) -> int:
    with psycopg.connect(notify.settings.database_url) as conn:
        row = conn.execute(
            "SELECT count(*) FROM inbox_processed_events WHERE consumer = %s", (CONSUMER_NAME,)
        ).fetchone()
    return int(row[0]) if row else 0


def test_case_updates_through_the_broker_stop_reminders_once(
    notify: Notify, backends: Backends, amqp_namespace: str
) -> None:
    # The first enquiry's first try is refused for now, so it is still in notify's hands when its case closes.
    closed_itself = _enquiry(notify, "auto")
    notify.transport.outcomes = [SendOutcome(DEFERRED, 451, "4.7.1", "the mail server answered 451 4.7.1")]
    assert notify.drain() == 1
    engaged, closed, routed = (_enquiry(notify, case) for case in ("engaged", "closed", "routed"))
    assert notify.drain() == 3
    assert set(_stopped(notify)) == {"engaged", "closed", "routed"}

    topology = Topology(amqp_namespace)
    consumer = Consumer(
        backends.amqp_url,
        topology,
        topology.queue(SERVICE, QUEUE_PURPOSE),
        [CASE_UPDATED],
        case_update_handler(notify.pool, clock=notify.clock),
    )
    consumer.declare()
    now = notify.clock() + timedelta(hours=1)
    resumed = _case_updated("engaged", indicators_events_pb2.CASE_CHANGE_ENGAGEMENT_RESUMED, now)
    events = [
        resumed,
        _case_updated("closed", indicators_events_pb2.CASE_CHANGE_CLOSED_BY_STAFF, now),
        _case_updated("routed", indicators_events_pb2.CASE_CHANGE_ROUTED, now),
        _case_updated("routed", indicators_events_pb2.CASE_CHANGE_FLAG_ADDED, now),
        _case_updated("auto", indicators_events_pb2.CASE_CHANGE_CLOSED, now),
        resumed,  # delivered again
    ]
    publisher = ConfirmingPublisher(backends.amqp_url, topology, "indicators")
    for event in events:
        publisher.publish(event)
    publisher.close()
    consumer.start()
    try:
        deadline = time.monotonic() + 20
        while _applied(notify) < 3 and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.5)  # the rest of the queue, had anything more been applied
    finally:
        consumer.stop()
    assert _applied(notify) == 3  # the three changes that stop reminders, each once; the others leave no trace

    # The deferred enquiry goes out after its case closed: its follow-up starts stopped.
    notify.clock.advance(hours=2)
    assert notify.drain() == 1
    assert _stopped(notify) == {
        "engaged": follow_up_store.ENGAGEMENT_RESUMED,
        "closed": follow_up_store.CASE_CLOSED,
        "routed": None,
        "auto": follow_up_store.CASE_CLOSED,
    }
    with notify.pool.connection() as conn:
        assert follow_up_store.describe(conn, engaged) == "reminders stopped: the student engaged again"
        assert follow_up_store.describe(conn, closed) == "reminders stopped: the case was closed"
        assert follow_up_store.describe(conn, closed_itself) == "reminders stopped: the case was closed"
        assert follow_up_store.describe(conn, routed) == "no answer yet: the sender is reminded if none comes"

    # Only the enquiry whose case neither closed nor saw the student again is followed up: one reminder, then one
    # escalation, each about that one case.
    notify.identity.responsible = {p: [("someone-else", "escalation_contact")] for p in notify.identity.students}
    sent_mail = len(notify.transport.sent)
    followups = FollowUps(notify.pool, notify.settings, notify.dispatcher._contacts)
    assert followups.run(notify.clock() + 8 * DAY) == 1
    assert followups.run(notify.clock() + 15 * DAY) == 1
    with psycopg.connect(notify.settings.database_url) as conn:
        reminded = conn.execute(
            "SELECT case_id FROM follow_ups WHERE reminded_at IS NOT NULL OR escalated_at IS NOT NULL"
        ).fetchall()
    assert reminded == [("routed",)]
    assert len(notify.transport.sent) == sent_mail


def test_engagement_resumed_stops_only_the_enquiries_sent_before_it(notify: Notify) -> None:
    earlier = _enquiry(notify, "case-7")
    assert notify.drain() == 1
    event_time = notify.clock() + timedelta(hours=1)
    notify.clock.advance(hours=2)
    later = _enquiry(notify, "case-7")  # a new enquiry after the student engaged again: followed up as usual
    assert notify.drain() == 1
    handle = case_update_handler(notify.pool, clock=notify.clock)
    handle(delivery_of(_case_updated("case-7", indicators_events_pb2.CASE_CHANGE_ENGAGEMENT_RESUMED, event_time)))
    with notify.pool.connection() as conn:
        assert follow_up_store.describe(conn, earlier) == "reminders stopped: the student engaged again"
        assert follow_up_store.describe(conn, later) == "no answer yet: the sender is reminded if none comes"


def test_an_answered_enquiry_keeps_its_answer_when_the_case_closes(notify: Notify) -> None:
    from tend_notify import resolutions

    request_id = _enquiry(notify, "case-8")
    assert notify.drain() == 1
    assert resolutions.record_answered(notify.pool, request_id, notify.clock())
    handle = case_update_handler(notify.pool, clock=notify.clock)
    handle(delivery_of(_case_updated("case-8", indicators_events_pb2.CASE_CHANGE_CLOSED_BY_STAFF, notify.clock())))
    with notify.pool.connection() as conn:
        assert follow_up_store.describe(conn, request_id) == "answered: no reminders"
