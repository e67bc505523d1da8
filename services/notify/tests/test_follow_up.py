"""Follow-up: no answer within the first period reminds the sender, within the second tells the escalation contact;
reminders come as one digest per member of staff per day, naming no student."""

from __future__ import annotations

import email
import email.policy
import uuid
from datetime import UTC, datetime, timedelta

import psycopg
from tend.notify.v1 import events_pb2

from services.notify.tests.conftest import Notify
from tend_notify import resolutions
from tend_notify.events import REMINDER_DUE
from tend_notify.follow_up import FollowUps, last_digest_time
from tend_notify.transport import OutgoingMail

# The enquiries of these tests go out on Wednesday 25 November 2026 at noon (London is on GMT then).
DAY = timedelta(days=1)
EIGHT_AM = datetime(2026, 11, 25, 8, 0, tzinfo=UTC)


def _parse(mail: OutgoingMail) -> email.message.EmailMessage:
    message = email.message_from_bytes(mail.data, policy=email.policy.default)
    assert isinstance(message, email.message.EmailMessage)
    return message


def _send_enquiries(notify: Notify, count: int, sender: str | None = None) -> list[str]:
    """Sends `count` enquiries from `sender` (default: the harness's sender), each to a new student of theirs."""
    sender = sender or notify.sender
    ids = []
    for n in range(count):
        student = notify.identity.add_student(f"Quillon{n} Tutee", f"student{n}@students.example.ac.uk")
        notify.identity.allow_enquiry(sender, student)
        ids.append(str(notify.request(student_pseudonym=student, sender_person_id=sender).request_id))
    assert notify.drain() == count
    return ids


def _reminder_events(notify: Notify) -> list[events_pb2.ReminderDue]:
    return [events_pb2.ReminderDue.FromString(e.body) for e in notify.outbox() if e.routing_key == REMINDER_DUE]


def test_the_digest_moment_is_the_local_hour_today_or_yesterday() -> None:
    winter_morning = datetime(2026, 11, 26, 7, 59, tzinfo=UTC)
    assert last_digest_time(winter_morning, "Europe/London", 8) == datetime(2026, 11, 25, 8, 0, tzinfo=UTC)
    summer_morning = datetime(2026, 7, 1, 7, 0, tzinfo=UTC)  # 08:00 in London
    assert last_digest_time(summer_morning, "Europe/London", 8) == summer_morning


def test_one_digest_reminds_the_sender_of_every_unanswered_enquiry(notify: Notify) -> None:
    ids = _send_enquiries(notify, 3)
    followups = FollowUps(notify.pool, notify.settings, notify.dispatcher._contacts)
    assert followups.run(EIGHT_AM + 7 * DAY) == 0  # sent at noon: seven days are up after this morning's digest
    assert followups.run(EIGHT_AM + 7 * DAY + timedelta(hours=12)) == 0
    notify.clock.now = EIGHT_AM + 8 * DAY
    assert followups.run(notify.clock.now) == 1
    assert followups.run(notify.clock.now + timedelta(hours=1)) == 0  # not twice
    assert notify.drain() == 1
    digest = notify.transport.sent[-1]
    message = _parse(digest)
    assert digest.rcpt_to == "alex.example@example.ac.uk"
    assert message["Subject"] == "Follow-up: three of your students may need a word"
    assert message["Auto-Submitted"] == "auto-generated"
    assert b"Quillon" not in digest.data  # no student is named, in the subject or anywhere
    text = message.get_body(("plain",))
    assert text is not None
    assert "Dear Dr Alex Example," in text.get_content()
    assert notify.settings.portal_base_url in text.get_content()
    events = _reminder_events(notify)
    assert sorted(e.request_id for e in events) == sorted(ids)
    assert {(e.stage, e.recipient_person_id) for e in events} == {(events_pb2.FOLLOW_UP_STAGE_REMINDER, notify.sender)}


def test_answered_enquiries_are_left_out_and_each_sender_gets_their_own(notify: Notify) -> None:
    answered, waiting = _send_enquiries(notify, 2)
    other = notify.identity.add_staff("Dr Bea Other", "bea.other@example.ac.uk")
    _send_enquiries(notify, 1, sender=other)
    assert resolutions.record_answered(notify.pool, uuid.UUID(answered), notify.clock())
    followups = FollowUps(notify.pool, notify.settings, notify.dispatcher._contacts)
    notify.clock.now = EIGHT_AM + 8 * DAY
    assert followups.run(notify.clock.now) == 2
    assert notify.drain() == 2
    subjects = {m.rcpt_to: _parse(m)["Subject"] for m in notify.transport.sent[-2:]}
    assert subjects == {
        "alex.example@example.ac.uk": "Follow-up: one of your students may need a word",
        "bea.other@example.ac.uk": "Follow-up: one of your students may need a word",
    }
    assert answered not in {e.request_id for e in _reminder_events(notify)}
    assert waiting in {e.request_id for e in _reminder_events(notify)}


def test_after_the_second_period_the_escalation_contact_is_told(notify: Notify) -> None:
    [request_id] = _send_enquiries(notify, 1)
    with psycopg.connect(notify.settings.database_url) as conn:
        pseudonym = conn.execute(
            "SELECT student_pseudonym FROM follow_ups WHERE request_id = %s", (request_id,)
        ).fetchone()
    assert pseudonym is not None
    lead = notify.identity.add_staff("Prof Lee Lead", "lee.lead@example.ac.uk")
    notify.identity.responsible[pseudonym[0]] = [(notify.sender, "personal_tutor"), (lead, "senior_tutor")]
    followups = FollowUps(notify.pool, notify.settings, notify.dispatcher._contacts)
    notify.clock.now = EIGHT_AM + 8 * DAY
    followups.run(notify.clock.now)
    notify.clock.now = EIGHT_AM + 15 * DAY
    assert followups.run(notify.clock.now) == 1
    assert followups.run(notify.clock.now) == 0
    assert notify.drain() == 2
    escalation = notify.transport.sent[-1]
    assert escalation.rcpt_to == "lee.lead@example.ac.uk"
    assert _parse(escalation)["Subject"] == "Follow-up: one of your students may need a further attempt to reach them"
    stages = [(e.stage, e.recipient_person_id) for e in _reminder_events(notify)]
    assert stages == [
        (events_pb2.FOLLOW_UP_STAGE_REMINDER, notify.sender),
        (events_pb2.FOLLOW_UP_STAGE_ESCALATION, lead),
    ]


def test_escalation_waits_while_identity_cannot_say_who(notify: Notify) -> None:
    _send_enquiries(notify, 1)
    followups = FollowUps(notify.pool, notify.settings, notify.dispatcher._contacts)
    notify.identity.stop()  # identity is down: the escalation is tried again at the next run, not dropped
    assert followups.run(EIGHT_AM + 15 * DAY) == 1  # the reminder needs nobody's address yet
    with psycopg.connect(notify.settings.database_url) as conn:
        assert conn.execute("SELECT reminded_at IS NOT NULL, escalated_at FROM follow_ups").fetchone() == (True, None)
