"""A thousand enquiries through the real path (gRPC request, outbox, broker, intake, sending threads, SMTP to a local
server): exactly a thousand messages arrive, one per request, and the case hears "sent" once for each."""

from __future__ import annotations

import email
import email.policy
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import psycopg
import pytest

from services.notify.tests.process_harness import STATUS_NAMES, eventually, mailbox, running_notify, smtp_sink
from tend_testing.backends import Backends

pytestmark = [pytest.mark.e2e]

ENQUIRIES = 1000


def test_a_thousand_enquiries_make_a_thousand_messages(
    backends: Backends,
    database_factory: Callable[[str | None], str],
    amqp_namespace: str,
    redis_prefix: str,
    tmp_path: Path,
) -> None:
    dsn = database_factory("tend_notify.migrations")
    received = tmp_path / "mailbox"
    with smtp_sink(received) as port:
        settings = {"TEND_NOTIFY_SMTP_PORT": str(port), "TEND_NOTIFY_SMTP_CONNECTIONS": "8"}
        with running_notify(
            backends, dsn, amqp_namespace, redis_prefix, tmp_path, settings, watched_smtp=False
        ) as notify:
            pairs = [notify.tutor_with_tutee(n) for n in range(ENQUIRIES)]
            with ThreadPoolExecutor(max_workers=8) as pool:
                request_ids = list(pool.map(lambda pair: notify.request_enquiry(*pair), pairs))
            eventually(lambda: len(mailbox(received)) >= ENQUIRIES, timeout=180, what="a thousand messages")
            with psycopg.connect(dsn) as conn:
                statuses = Counter(row[0] for row in conn.execute("SELECT status FROM messages"))
                kept_text = conn.execute("SELECT count(*) FROM messages WHERE body IS NOT NULL").fetchone()
            events = notify.case_events()
        # The sink has stopped: nothing more can arrive.
        messages = [email.message_from_bytes(p.read_bytes(), policy=email.policy.default) for p in mailbox(received)]
    assert len(messages) == ENQUIRIES
    # One file per Message-ID (a second copy would replace the first), so the sink also counted what it received.
    assert {str(m["Message-ID"]) for m in messages} == {f"<{request_id}@example.ac.uk>" for request_id in request_ids}
    assert {str(m["To"].addresses[0].addr_spec) for m in messages} == {
        f"student{n}@students.example.ac.uk" for n in range(ENQUIRIES)
    }
    assert statuses == {"sent": ENQUIRIES}
    assert kept_text == (0,)
    sent = Counter(e.request_id for e in events if STATUS_NAMES[e.status] == "sent")
    assert sent == dict.fromkeys(request_ids, 1)
