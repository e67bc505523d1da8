"""A real `tend-notify serve` process and the real broker: indicators' CaseUpdated (published here as indicators
publishes it) stops the follow-up reminders of the case's sent enquiry, and GetEnquiryStatus says why; a change that
does not concern reminders leaves them as they were."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from tend.indicators.v1 import events_pb2 as indicators_events_pb2
from tend.notify.v1 import notify_pb2

from services.notify.tests.process_harness import NotifyProcess, eventually, running_notify
from tend_common.messaging.envelope import envelope, new_meta
from tend_common.messaging.publisher import ConfirmingPublisher
from tend_common.messaging.topology import Topology
from tend_notify.events import CASE_UPDATED
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


def _follow_up(notify: NotifyProcess, tutor: str, request_id: str) -> str:
    response = notify.stub.GetEnquiryStatus(
        notify_pb2.GetEnquiryStatusRequest(actor_assertion=notify.identity.assertion(tutor), request_id=request_id),
        timeout=10,
    )
    return str(response.follow_up)


def test_case_updates_stop_reminders_and_the_status_says_why(
    notify: NotifyProcess, backends: Backends, amqp_namespace: str
) -> None:
    enquiries = {}
    for n, case_id in enumerate(("case-engaged", "case-closed", "case-routed")):
        tutor, student = notify.tutor_with_tutee(n)
        enquiries[case_id] = (tutor, notify.request_enquiry(tutor, student, case_id=case_id))
    for tutor, request_id in enquiries.values():
        notify.wait_status(request_id, "sent")
        assert _follow_up(notify, tutor, request_id) == "no answer yet: the sender is reminded if none comes"

    publisher = ConfirmingPublisher(backends.amqp_url, Topology(amqp_namespace), "indicators")
    changes = {
        "case-engaged": indicators_events_pb2.CASE_CHANGE_ENGAGEMENT_RESUMED,
        "case-closed": indicators_events_pb2.CASE_CHANGE_CLOSED_BY_STAFF,
        "case-routed": indicators_events_pb2.CASE_CHANGE_ROUTED,
    }
    try:
        for case_id, change in changes.items():
            event = indicators_events_pb2.CaseUpdated(
                meta=new_meta("indicators", event_id=str(uuid.uuid4()), occurred_at=datetime.now(UTC)),
                case_id=case_id,
                student_pseudonym="p_as_indicators_knows_it",
                change=change,
            )
            publisher.publish(envelope(event, CASE_UPDATED))
    finally:
        publisher.close()

    expected = {
        "case-engaged": "reminders stopped: the student engaged again",
        "case-closed": "reminders stopped: the case was closed",
    }
    for case_id, text in expected.items():
        tutor, request_id = enquiries[case_id]

        def says(tutor: str = tutor, request_id: str = request_id, text: str = text) -> bool:
            return _follow_up(notify, tutor, request_id) == text

        eventually(says, 30, f"{case_id}: {text}")
    tutor, request_id = enquiries["case-routed"]
    assert _follow_up(notify, tutor, request_id) == "no answer yet: the sender is reminded if none comes"
    assert "Traceback" not in notify.log()
