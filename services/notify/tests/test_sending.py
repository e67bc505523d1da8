"""The intake and the sending threads' steps against the real database and the fake identity: each request is queued
once, attempts are recorded before and after, temporary failures are retried on a schedule, permanent ones are
reported, uncertain ones wait for a person, and the text is removed once it is no longer needed."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import psycopg
import pytest
from tend.notify.v1 import events_pb2, notify_pb2

from services.notify.tests.conftest import Notify, delivery_of
from tend_common.messaging.consumer import PoisonMessage
from tend_notify import resolutions
from tend_notify.events import ENQUIRY_DELIVERY_UPDATED, enquiry_requested
from tend_notify.intake import enquiry_handler
from tend_notify.recovery import ProcessLease, recover_abandoned_attempts
from tend_notify.transport import BOUNCED, DEFERRED, FAILED, UNCERTAIN, OutgoingMail, SendOutcome

_STATUS_NAMES = {
    value: name.removeprefix("DELIVERY_STATUS_").lower() for name, value in notify_pb2.DeliveryStatus.items()
}


def _statuses(notify: Notify, request_id: uuid.UUID) -> list[str]:
    found = []
    for event in notify.outbox():
        if event.routing_key == ENQUIRY_DELIVERY_UPDATED:
            message = events_pb2.EnquiryDeliveryUpdated.FromString(event.body)
            if message.request_id == str(request_id):
                found.append(_STATUS_NAMES[message.status])
    return found


def _attempts(notify: Notify, request_id: uuid.UUID) -> list[tuple[int, str, str | None]]:
    with psycopg.connect(notify.settings.database_url) as conn:
        rows = conn.execute(
            "SELECT attempt, phase, outcome FROM delivery_attempts WHERE request_id = %s ORDER BY attempt",
            (request_id,),
        ).fetchall()
    return [(int(r[0]), str(r[1]), r[2]) for r in rows]


def test_a_request_delivered_twice_is_queued_once(notify: Notify) -> None:
    request = notify.request()
    enquiry_handler(notify.pool)(delivery_of(enquiry_requested(request), redelivered=True))
    with psycopg.connect(notify.settings.database_url) as conn:
        assert conn.execute("SELECT count(*) FROM messages").fetchone() == (1,)
    assert _statuses(notify, request.request_id) == ["queued"]


def test_an_event_that_breaks_the_rules_is_poison_and_its_text_is_not_quoted(notify: Notify) -> None:
    event = enquiry_requested(notify.make_request(body="You were flagged. {support_url}"))
    with pytest.raises(PoisonMessage) as raised:
        enquiry_handler(notify.pool)(delivery_of(event))
    assert str(raised.value) == "the enquiry breaks the content rules: no_flags"


def test_a_sent_enquiry_is_recorded_and_its_text_removed(notify: Notify) -> None:
    request = notify.request()
    assert notify.step()
    assert not notify.step()
    [mail] = notify.transport.sent
    assert mail.rcpt_to == "sam.student@students.example.ac.uk"
    assert mail.message_id == f"<{request.request_id}@example.ac.uk>"
    assert b"Dear Sam," in mail.data
    assert b"Dr Alex Example" in mail.data
    row = notify.row(request.request_id)
    assert (row["status"], row["subject"], row["body"], row["smtp_attempts"]) == ("sent", None, None, 1)
    assert _attempts(notify, request.request_id) == [(1, "data_sent", "sent")]
    assert _statuses(notify, request.request_id) == ["queued", "sent"]
    # Identity was asked at send time, for this purpose, on behalf of the sender.
    asked = [
        (r.pseudonym or r.person_id, r.purpose, r.on_behalf_of_person_id) for r in notify.identity.contact_requests
    ]
    assert (notify.student, "supportive_enquiry", notify.sender) in asked
    with psycopg.connect(notify.settings.database_url) as conn:
        assert conn.execute("SELECT count(*) FROM follow_ups").fetchone() == (1,)


def test_temporary_failures_are_retried_on_a_schedule_then_sent(notify: Notify) -> None:
    request = notify.request()
    notify.transport.outcomes = [
        SendOutcome(DEFERRED, 451, "4.7.1", "the mail server answered 451 4.7.1 to the message"),
        SendOutcome(DEFERRED, reason="the mail server could not be reached (ConnectionRefusedError)"),
    ]
    assert notify.step()
    row = notify.row(request.request_id)
    assert row["status"] == "deferred"
    assert row["body"] is not None  # still needed for the next try
    first_delay = row["next_attempt_at"] - notify.clock()
    assert timedelta(seconds=15) <= first_delay <= timedelta(seconds=30)
    assert not notify.step()  # not due yet: no thread waits on it, the schedule is in the database
    notify.clock.advance(seconds=30)
    assert notify.step()
    second_delay = notify.row(request.request_id)["next_attempt_at"] - notify.clock()
    assert timedelta(seconds=30) <= second_delay <= timedelta(seconds=60)
    notify.clock.advance(seconds=60)
    assert notify.step()
    assert notify.row(request.request_id)["status"] == "sent"
    assert len(notify.transport.sent) == 1
    assert _statuses(notify, request.request_id) == ["queued", "deferred", "deferred", "sent"]
    assert [a[2] for a in _attempts(notify, request.request_id)] == ["deferred", "deferred", "sent"]


def test_retries_end_in_failure_when_attempts_are_used_up(notify: Notify) -> None:
    request = notify.request()
    notify.transport.outcomes = [SendOutcome(DEFERRED, 421, "4.3.2", "busy")] * notify.settings.max_attempts
    for _ in range(notify.settings.max_attempts):
        notify.clock.advance(seconds=notify.settings.retry_max_seconds)
        assert notify.step()
    row = notify.row(request.request_id)
    assert (row["status"], row["body"]) == ("failed", None)
    assert row["reason"].startswith(f"gave up after {notify.settings.max_attempts} tries")


@pytest.mark.parametrize(
    ("outcome", "status"),
    [
        (SendOutcome(FAILED, 554, "5.6.0", "the mail server answered 554 5.6.0 to the message"), "failed"),
        (SendOutcome(BOUNCED, 550, "5.1.1", "the mail server answered 550 5.1.1 to the recipient"), "bounced"),
    ],
)
def test_permanent_failures_are_reported_not_retried(notify: Notify, outcome: SendOutcome, status: str) -> None:
    request = notify.request()
    notify.transport.outcomes = [outcome]
    assert notify.step()
    notify.clock.advance(days=1)
    assert not notify.step()
    row = notify.row(request.request_id)
    assert (row["status"], row["reason"], row["body"]) == (status, outcome.reason, None)
    assert _statuses(notify, request.request_id) == ["queued", status]


def test_an_uncertain_delivery_waits_for_a_person(notify: Notify) -> None:
    request = notify.request()
    notify.transport.outcomes = [SendOutcome(UNCERTAIN, reason="no answer after the message was handed over")]
    assert notify.step()
    notify.clock.advance(days=1)
    assert not notify.step()
    row = notify.row(request.request_id)
    assert row["status"] == "delivery_uncertain"
    assert row["body"] is not None  # kept while a person may still decide to send it again
    assert (
        resolutions.resolve_uncertain(notify.pool, request.request_id, resolutions.RESEND, notify.clock()) == "queued"
    )
    assert notify.step()
    assert (notify.row(request.request_id)["status"], len(notify.transport.sent)) == ("sent", 1)
    assert _statuses(notify, request.request_id) == ["queued", "delivery_uncertain", "queued", "sent"]
    with pytest.raises(resolutions.NotUncertain):
        resolutions.resolve_uncertain(notify.pool, request.request_id, resolutions.RESEND, notify.clock())


def test_a_person_can_confirm_or_cancel_an_uncertain_delivery(notify: Notify) -> None:
    confirmed, cancelled = notify.request(), notify.request()
    notify.transport.outcomes = [SendOutcome(UNCERTAIN), SendOutcome(UNCERTAIN)]
    assert notify.drain() == 2
    resolutions.resolve_uncertain(notify.pool, confirmed.request_id, resolutions.CONFIRM_SENT, notify.clock())
    resolutions.resolve_uncertain(notify.pool, cancelled.request_id, resolutions.CANCEL, notify.clock())
    assert (notify.row(confirmed.request_id)["status"], notify.row(confirmed.request_id)["body"]) == ("sent", None)
    assert (notify.row(cancelled.request_id)["status"], notify.row(cancelled.request_id)["body"]) == ("failed", None)
    assert notify.transport.sent == []


def test_an_unknown_student_fails_and_identity_down_is_retried(notify: Notify) -> None:
    unknown = notify.request(student_pseudonym="p_nobody")
    assert notify.step()
    assert notify.row(unknown.request_id)["status"] == "failed"
    notify.identity.unavailable = True
    later = notify.request()
    assert notify.step()
    row = notify.row(later.request_id)
    assert (row["status"], row["smtp_attempts"], row["tries"]) == ("deferred", 0, 1)
    notify.identity.unavailable = False
    notify.clock.advance(minutes=1)
    assert notify.step()
    assert notify.row(later.request_id)["status"] == "sent"


def test_students_quiet_hours_hold_a_message_until_morning(notify: Notify) -> None:
    notify.clock.now = datetime(2026, 11, 25, 22, 30, tzinfo=UTC)  # 22:30 in London
    request = notify.request()
    assert notify.step()
    row = notify.row(request.request_id)
    assert (row["status"], row["tries"], row["next_attempt_at"]) == (
        "queued",
        0,
        datetime(2026, 11, 26, 8, 0, tzinfo=UTC),
    )
    assert notify.transport.sent == []
    notify.clock.now = datetime(2026, 11, 26, 8, 0, tzinfo=UTC)
    assert notify.step()
    assert notify.row(request.request_id)["status"] == "sent"


def test_the_global_rate_limit_postpones_without_counting_a_try(notify: Notify) -> None:
    from dataclasses import replace

    from tend_notify.dispatcher import Dispatcher

    limited = replace(notify.settings, global_limit_per_minute=1)
    notify.dispatcher = Dispatcher(
        notify.pool,
        limited,
        notify.dispatcher._contacts,
        notify.dispatcher._limiter,
        notify.lease.key,
        clock=notify.clock,
    )
    first, second = notify.request(), notify.request()
    assert notify.drain() == 2
    statuses = {notify.row(r.request_id)["status"] for r in (first, second)}
    assert statuses == {"sent", "queued"}
    held = next(r for r in (first, second) if notify.row(r.request_id)["status"] == "queued")
    assert notify.row(held.request_id)["tries"] == 0
    assert notify.row(held.request_id)["next_attempt_at"] > notify.clock()
    notify.clock.advance(minutes=1, seconds=2)
    assert notify.step()
    assert notify.row(held.request_id)["status"] == "sent"


def test_a_sending_domain_off_the_allow_list_is_refused(notify: Notify) -> None:
    with psycopg.connect(notify.settings.database_url) as conn:
        conn.execute("UPDATE institutions SET from_address = 'tend@elsewhere.example.com'")
    request = notify.request()
    assert notify.step()
    row = notify.row(request.request_id)
    assert (row["status"], row["reason"]) == ("failed", "the sending domain is not on the allow-list")
    assert notify.transport.sent == []


def _abandon(notify: Notify, phase: str) -> tuple[uuid.UUID, ProcessLease]:
    """Leaves an attempt as a process would that stops now: recorded, `phase` reached, no outcome. Returns the
    request id and that process's lease, still held (the process still alive) until released."""
    request = notify.request()
    owner = ProcessLease(notify.settings.database_url)
    with psycopg.connect(notify.settings.database_url) as conn:
        conn.execute(
            "INSERT INTO delivery_attempts (request_id, attempt, owner_key, phase) VALUES (%s, 1, %s, %s)",
            (request.request_id, owner.key, phase),
        )
        conn.execute(
            "UPDATE messages SET status = 'sending', tries = 1, smtp_attempts = 1 WHERE request_id = %s",
            (request.request_id,),
        )
    return request.request_id, owner


def _recover_after_death(notify: Notify, owner: ProcessLease) -> int:
    """Ends the owner's session, as its death would, and resolves its attempts. The database server lets the lock go
    a moment after the connection closes; in service, the next housekeeping run would find it."""
    owner.release()
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        resolved = recover_abandoned_attempts(notify.pool, notify.lease.key, 4, notify.clock())
        if resolved:
            return resolved
        time.sleep(0.05)
    raise AssertionError("the owner's lock was never released")


def test_an_attempt_of_a_live_process_is_left_alone(notify: Notify) -> None:
    request_id, owner = _abandon(notify, "data_sent")
    assert recover_abandoned_attempts(notify.pool, notify.lease.key, 4, notify.clock()) == 0
    assert notify.row(request_id)["status"] == "sending"
    owner.release()


def test_an_attempt_abandoned_before_the_hand_over_is_sent_again(notify: Notify) -> None:
    request_id, owner = _abandon(notify, "started")
    assert _recover_after_death(notify, owner) == 1
    assert notify.row(request_id)["status"] == "deferred"
    assert notify.step()
    assert notify.row(request_id)["status"] == "sent"
    assert _attempts(notify, request_id) == [(1, "started", "interrupted"), (2, "data_sent", "sent")]


def test_an_attempt_abandoned_after_the_hand_over_is_uncertain_and_not_resent(notify: Notify) -> None:
    request_id, owner = _abandon(notify, "data_sent")
    assert _recover_after_death(notify, owner) == 1
    assert recover_abandoned_attempts(notify.pool, notify.lease.key, 4, notify.clock()) == 0
    assert notify.row(request_id)["status"] == "delivery_uncertain"
    notify.clock.advance(days=1)
    assert not notify.step()
    assert notify.transport.sent == []
    assert _statuses(notify, request_id) == ["queued", "delivery_uncertain"]


class _Breaking:
    """A transport that fails unexpectedly, before or after the hand-over."""

    def __init__(self, after_hand_over: bool) -> None:
        self._after = after_hand_over

    def send(self, mail: OutgoingMail, at_point_of_no_return: Callable[[], None]) -> SendOutcome:
        if self._after:
            at_point_of_no_return()
        raise RuntimeError("unexpected")

    def close(self) -> None:
        pass


@pytest.mark.parametrize(("after_hand_over", "status"), [(False, "deferred"), (True, "delivery_uncertain")])
def test_an_unexpected_failure_resolves_the_attempt_at_once(notify: Notify, after_hand_over: bool, status: str) -> None:
    request = notify.request()
    assert notify.dispatcher.dispatch_once(_Breaking(after_hand_over))
    assert notify.row(request.request_id)["status"] == status
    assert [outcome for _n, _phase, outcome in _attempts(notify, request.request_id)] == [
        "uncertain" if after_hand_over else "deferred"
    ]


class _StoppingAfterOne:
    """Hands over the first message as a server accepting it would, then stops the process."""

    def __init__(self, notify: Notify) -> None:
        self._notify = notify
        self.sent: list[OutgoingMail] = []

    def send(self, mail: OutgoingMail, at_point_of_no_return: Callable[[], None]) -> SendOutcome:
        at_point_of_no_return()
        self.sent.append(mail)
        self._notify.dispatcher.stop()
        return SendOutcome("sent", 250)

    def close(self) -> None:
        pass


def test_a_stopping_thread_takes_back_the_attempts_it_has_not_begun(notify: Notify) -> None:
    requests = [notify.request() for _ in range(3)]
    transport = _StoppingAfterOne(notify)
    assert notify.dispatcher.dispatch_once(transport) == 3  # one batch: all three attempts recorded together
    [sent] = transport.sent
    rows = {r.request_id: notify.row(r.request_id) for r in requests}
    assert sorted(row["status"] for row in rows.values()) == ["queued", "queued", "sent"]
    for request in requests:
        row = rows[request.request_id]
        if sent.message_id == f"<{request.request_id}@example.ac.uk>":
            assert _attempts(notify, request.request_id) == [(1, "data_sent", "sent")]
        else:
            # As if never taken: no attempt, no try counted, due at once, no status published beyond "queued".
            assert (row["tries"], row["smtp_attempts"], row["body"] is not None) == (0, 0, True)
            assert row["next_attempt_at"] <= notify.clock()
            assert _attempts(notify, request.request_id) == []
            assert _statuses(notify, request.request_id) == ["queued"]


def test_a_batch_asks_identity_once_for_a_sender_it_needs_twice(notify: Notify) -> None:
    other = notify.identity.add_student("Robin", "robin@students.example.ac.uk")
    notify.identity.allow_enquiry(notify.sender, other)
    notify.request()
    notify.request(student_pseudonym=other)
    assert notify.step() == 2
    assert len(notify.transport.sent) == 2
    asked = [(r.pseudonym or r.person_id) for r in notify.identity.contact_requests]
    assert sorted(asked) == sorted([notify.student, other, notify.sender])
