"""The privacy canary test for notify: after enquiries are previewed, sent, deferred and refused through a real
process, no name, address or message text appears in notify's log output, and its database holds neither the text
of a delivered message nor any engagement data (nor anyone's name or address, ever)."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from pathlib import Path

import psycopg
import pytest
from tend.notify.v1 import notify_pb2

from services.notify.tests.process_harness import running_notify
from tend_testing.backends import Backends
from tend_testing.canaries import find_in_bytes, find_in_database, find_in_text

pytestmark = [pytest.mark.e2e]

# Column names that would mean notify keeps engagement data, which is indicators' alone.
ENGAGEMENT_TERMS = ("attendance", "engagement", "indicator", "flag", "score", "click", "risk", "login", "activity")


def test_no_name_address_or_text_in_logs_and_no_text_or_engagement_data_in_the_database(
    backends: Backends,
    database_factory: Callable[[str | None], str],
    amqp_namespace: str,
    redis_prefix: str,
    tmp_path: Path,
) -> None:
    dsn = database_factory("tend_notify.migrations")
    tag = uuid.uuid4().hex[:10]
    tutor_name, tutor_email = f"Canarytutor {tag}", f"canary-tutor-{tag}@example.ac.uk"
    student_name, student_email = f"Canarystudent {tag}", f"canary-student-{tag}@students.example.ac.uk"
    other_name, other_email = f"Canaryother {tag}", f"canary-other-{tag}@students.example.ac.uk"
    phrase = f"Canaryphrase{tag}"
    canaries = [tutor_name, tutor_email, student_name, student_email, other_name, other_email, phrase, tag]
    with running_notify(backends, dsn, amqp_namespace, redis_prefix, tmp_path) as notify:
        tutor = notify.identity.add_staff(tutor_name, tutor_email)
        student = notify.identity.add_student(student_name, student_email)
        other = notify.identity.add_student(other_name, other_email)
        for pseudonym in (student, other):
            notify.identity.allow_enquiry(tutor, pseudonym)
        body = f"Dear {{student_name}},\n\nI enjoyed your essay on {phrase}. How are you?\n\n{{support_url}}"
        preview = notify.stub.PreviewEnquiry(
            notify_pb2.PreviewEnquiryRequest(
                actor_assertion=notify.identity.assertion(tutor), student_pseudonym=student, body=body
            )
        )
        assert student_name in preview.rendered.text_body
        notify.smtp.behaviour.data_replies = ["451 4.7.1 Try again later"]
        sent = notify.request_enquiry(tutor, student, subject=f"About {phrase}", body=body)
        notify.wait_status(sent, "sent")
        notify.smtp.behaviour.rcpt_reply = f"550 5.1.1 <{other_email}> {other_name} is unknown here"
        bounced = notify.request_enquiry(tutor, other, body=body)
        notify.wait_status(bounced, "bounced")
        events = notify.case_events()
        log = notify.log()
        [delivered] = notify.smtp.messages
    # The message itself carried them, as it should...
    assert phrase.encode() in delivered.data
    assert student_email in delivered.rcpt_tos
    # ...and nothing else kept them.
    assert find_in_text(log, canaries, "notify's log") == []
    assert '"request_id"' in log  # the log is there, and speaks in identifiers
    assert find_in_database(dsn, canaries) == []
    assert find_in_bytes([e.SerializeToString() for e in events], canaries, "status events") == []
    with psycopg.connect(dsn) as conn:
        texts = conn.execute("SELECT count(*) FROM messages WHERE subject IS NOT NULL OR body IS NOT NULL").fetchone()
        columns = [
            f"{table}.{column}"
            for table, column in conn.execute(
                "SELECT table_name, column_name FROM information_schema.columns WHERE table_schema = 'public'"
            )
        ]
    assert texts == (0,)
    assert [c for c in columns if any(term in c.lower() for term in ENGAGEMENT_TERMS)] == []
