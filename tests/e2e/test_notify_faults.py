"""Never twice, never silently lost: a real `tend-notify serve` process, the real broker and a real SMTP server.

(a) notify is killed (SIGKILL) while the server holds the transaction before any of the message is handed over:
    after a restart the message is sent, and the mailbox holds exactly one copy;
(b) notify is killed the moment the server has accepted a message, before its answer arrives: after a restart the
    message is "delivery uncertain", never sent a second time, and the case is told;
(c) the server answers 4xx for a while, then 250: exactly one copy, after retries on a schedule;
(d) the server answers 5xx: the case is told of the failure, and nothing is retried.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from services.notify.tests.process_harness import STATUS_NAMES, NotifyProcess, eventually, running_notify
from services.notify.tests.smtp_server import Received
from tend_testing.backends import Backends

pytestmark = [pytest.mark.e2e]


@pytest.fixture
def notify(
    backends: Backends,
    database_factory: Callable[[str | None], str],
    amqp_namespace: str,
    redis_prefix: str,
    tmp_path: Path,
) -> Iterator[NotifyProcess]:
    dsn = database_factory("tend_notify.migrations")
    with running_notify(backends, dsn, amqp_namespace, redis_prefix, tmp_path) as process:
        yield process


def _copies(notify: NotifyProcess, request_id: str) -> int:
    return sum(1 for m in notify.smtp.messages if m.message_id == f"<{request_id}@example.ac.uk>")


def _barrier(notify: NotifyProcess) -> None:
    """Sends one more enquiry and waits for it: whatever the sending threads were going to do before it, is done."""
    tutor, student = notify.tutor_with_tutee(99)
    request_id = notify.request_enquiry(tutor, student)
    notify.wait_status(request_id, "sent")


def _case_statuses(notify: NotifyProcess, request_id: str) -> list[str]:
    return [STATUS_NAMES[e.status] for e in notify.case_events() if e.request_id == request_id]


@pytest.mark.fault
def test_a_kill_before_the_hand_over_ends_with_exactly_one_copy(notify: NotifyProcess) -> None:
    hold = threading.Event()
    notify.smtp.behaviour.hold_at_rcpt = hold
    tutor, student = notify.tutor_with_tutee()
    request_id = notify.request_enquiry(tutor, student)
    eventually(notify.smtp.rcpt_seen.is_set, what="the transaction reaching the recipient")
    notify.kill()
    notify.smtp.behaviour.hold_at_rcpt = None
    hold.set()
    assert notify.status(request_id) == "sending"
    notify.start()
    notify.wait_status(request_id, "sent")
    _barrier(notify)
    assert _copies(notify, request_id) == 1
    assert notify.attempts(request_id) == [("started", "interrupted"), ("data_sent", "sent")]
    assert _case_statuses(notify, request_id) == ["queued", "deferred", "sent"]


@pytest.mark.fault
def test_a_kill_after_the_server_accepted_never_sends_a_second_copy(notify: NotifyProcess) -> None:
    def kill_before_answering(_received: Received) -> None:
        notify.kill()

    notify.smtp.behaviour.on_accept = kill_before_answering
    tutor, student = notify.tutor_with_tutee()
    request_id = notify.request_enquiry(tutor, student)
    eventually(lambda: notify.smtp.count() == 1, what="the server accepting the message")
    notify.smtp.behaviour.on_accept = None
    notify.start()
    notify.wait_status(request_id, "delivery_uncertain")
    _barrier(notify)
    assert _copies(notify, request_id) == 1
    assert notify.attempts(request_id) == [("data_sent", "uncertain")]
    assert _case_statuses(notify, request_id) == ["queued", "delivery_uncertain"]


def test_temporary_refusals_are_retried_until_accepted_once(notify: NotifyProcess) -> None:
    notify.smtp.behaviour.data_replies = ["451 4.7.1 Try again later"] * 3
    tutor, student = notify.tutor_with_tutee()
    request_id = notify.request_enquiry(tutor, student)
    notify.wait_status(request_id, "sent")
    _barrier(notify)
    assert _copies(notify, request_id) == 1
    assert notify.smtp.data_commands == 5  # three refusals, the copy, and the barrier
    assert [outcome for _phase, outcome in notify.attempts(request_id)] == ["deferred"] * 3 + ["sent"]
    events = [e for e in notify.case_events() if e.request_id == request_id]
    assert [STATUS_NAMES[e.status] for e in events] == ["queued", "deferred", "deferred", "deferred", "sent"]
    assert all("451 4.7.1" in e.reason for e in events[1:4])


def test_a_permanent_refusal_is_reported_and_not_retried(notify: NotifyProcess) -> None:
    notify.smtp.behaviour.data_replies = ["554 5.6.0 Message refused"]
    tutor, student = notify.tutor_with_tutee()
    request_id = notify.request_enquiry(tutor, student)
    notify.wait_status(request_id, "failed")
    _barrier(notify)
    assert _copies(notify, request_id) == 0
    assert notify.attempts(request_id) == [("data_sent", "failed")]
    [failed] = [e for e in notify.case_events() if e.request_id == request_id and STATUS_NAMES[e.status] == "failed"]
    assert failed.reason == "the mail server answered 554 5.6.0 to the message"
