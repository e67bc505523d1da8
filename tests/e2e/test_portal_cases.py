"""The case pages through real processes: a student goes quiet, indicators opens a case routed by identity to the
personal tutor, and the tutor, signed in to the portal, sees the case with the student's name, opens it, previews
the institution's supportive e-mail for this student, edits nothing, sends it (twice, as a double click would), and
the case shows its delivery status; notify (in test mode, writing to a local mailbox) sends exactly one e-mail."""

from __future__ import annotations

import base64
import email
import email.policy
import html
import re
import secrets
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import urljoin

import psycopg
import pytest
import redis
import requests

from tend_testing.backends import Backends
from tend_testing.flows import form_action, form_value, sign_in
from tend_testing.namespaces import new_amqp_namespace
from tend_testing.processes import ServiceProcess, free_port
from tend_testing.suite import BACK_END_SERVICES, Suite, SuiteConfig, SuitePorts, run_command

pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("portal-cases")]

SOURCE = "library"
SOURCE_KEY = secrets.token_urlsafe(32)
QUIET_STUDENT = "student002"


def _eventually(query: Callable[[], object], timeout: float = 60.0, what: str = "the condition") -> object:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = query()
        if result:
            return result
        time.sleep(0.3)
    raise AssertionError(f"{what} not reached in {timeout} seconds")


def _rows(dsn: str, sql: str, *params: object) -> list[tuple[object, ...]]:
    with psycopg.connect(dsn) as conn:
        return conn.execute(sql.encode(), params).fetchall()


@dataclass
class Running:
    config: SuiteConfig
    suite: Suite
    mailbox: Path


@pytest.fixture(scope="module")
def running(
    backends: Backends,
    module_database_factory: Callable[[str | None], str],
    tmp_path_factory: pytest.TempPathFactory,
    _amqp_cleanup: None,
) -> Iterator[Running]:
    """The whole suite, with notify in test mode: each e-mail becomes a file in a local mailbox."""
    mailbox = tmp_path_factory.mktemp("mailbox")
    config = SuiteConfig(
        ports=SuitePorts.free(),
        databases={service: module_database_factory(f"tend_{service}.migrations") for service in BACK_END_SERVICES},
        amqp_url=backends.amqp_url,
        amqp_namespace=new_amqp_namespace(),
        redis_url=backends.redis_url,
        redis_prefix=f"test:{uuid.uuid4().hex[:12]}:checkin:",
        extra_settings={"notify": {"DELIVERY_MODE": "mailbox", "MAILBOX_DIR": str(mailbox)}},
    )
    run_command(config, "identity", "load-demo")
    # The default institution's quiet hours (21:00 to 08:00) would hold the e-mail when the test runs at night.
    with psycopg.connect(config.databases["notify"]) as conn:
        conn.execute("UPDATE institutions SET quiet_hours_start = '00:00', quiet_hours_end = '00:00'")
    suite = Suite(config, Path(tmp_path_factory.mktemp("suite-logs")))
    try:
        suite.start()
        yield Running(config, suite, mailbox)
    finally:
        suite.stop()
        client = redis.Redis.from_url(backends.redis_url)
        keys = list(client.scan_iter(match=f"{config.redis_prefix}*"))
        if keys:
            client.delete(*keys)
        client.close()


@pytest.fixture(scope="module")
def case(running: Running, tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """A quiet student's case, produced the way a source system would: one event three weeks ago, then silence.
    Returns the case id, the tutor's user name and the student's display name."""
    port = free_port()
    env = {
        **running.config.environment("indicators"),
        "TEND_INDICATORS_HTTP_PORT": str(port),
        "TEND_INDICATORS_SOURCE_CREDENTIALS": f"{SOURCE}:{SOURCE_KEY}",
        "TEND_INDICATORS_WEB_WORKERS": "1",
        "TEND_INDICATORS_WEB_THREADS": "2",
    }
    web = ServiceProcess(
        "indicators-web", [sys.executable, "-m", "tend_indicators", "web"], env, Path(tmp_path_factory.mktemp("web"))
    )
    web.start().wait_http(port, "/readyz")
    try:
        identity = running.config.databases["identity"]
        [(number, display_name)] = _rows(
            identity, "SELECT student_number, display_name FROM people WHERE username = %s", QUIET_STUDENT
        )
        event = {
            "event_id": f"portal-cases-{QUIET_STUDENT}",
            "student_id_kind": "student_number",
            "student_id": number,
            "type": "vle_activity",
            "module_run_id": str(uuid.uuid5(uuid.NAMESPACE_URL, "tend-portal-cases-e2e")),
            "occurred_at": (datetime.now(UTC) - timedelta(days=20)).isoformat(),
        }
        auth = "Basic " + base64.b64encode(f"{SOURCE}:{SOURCE_KEY}".encode()).decode()
        sent = requests.post(
            f"http://127.0.0.1:{port}/events", json={"events": [event]}, headers={"Authorization": auth}, timeout=30
        )
        assert sent.status_code == 200, sent.text
    finally:
        assert web.terminate() == 0, web.read_log()[-2000:]
    indicators = running.config.databases["indicators"]
    routed = _eventually(
        lambda: _rows(indicators, "SELECT case_id::text FROM cases WHERE routed"), what="a routed case"
    )
    assert isinstance(routed, list)
    [(case_id,)] = routed
    [(tutor,)] = _rows(
        indicators,
        "SELECT person_id FROM case_staff WHERE case_id = %s AND relationship = 'personal_tutor'",
        case_id,
    )
    [(username,)] = _rows(identity, "SELECT username FROM people WHERE id::text = %s", tutor)
    return {
        "case_id": str(case_id),
        "tutor": str(username),
        "display_name": str(display_name),
    }


def _textarea(page: str, name: str) -> str:
    """A text area's text as a browser would send it back."""
    found = re.search(rf'<textarea[^>]*name="{name}"[^>]*>(.*?)</textarea>', page, re.DOTALL)
    assert found is not None, f"no text area {name!r} on the page"
    return html.unescape(found.group(1))


def _mail(mailbox: Path) -> list[Path]:
    return sorted(mailbox.glob("*.eml"))


def test_the_tutor_sees_the_case_opens_it_and_sends_one_supportive_email(
    running: Running, case: dict[str, str]
) -> None:
    portal = running.config.portal_url
    tutor = sign_in(portal, case["tutor"])

    cases = tutor.get(f"{portal}/cases", timeout=10)
    assert cases.status_code == 200, cases.text
    assert case["display_name"] in cases.text  # resolved through identity, for the tutor
    assert "consecutive term days" in cases.text  # the flag's plain sentence
    case_path = f"/cases/{case['case_id']}"
    assert f'href="{case_path}"' in cases.text

    page = tutor.get(f"{portal}{case_path}", timeout=10)
    assert page.status_code == 200, page.text
    assert case["display_name"] in page.text
    assert "Engagement" in page.text

    compose = tutor.get(f"{portal}{case_path}/enquiry", timeout=10)
    assert compose.status_code == 200, compose.text
    assert f"Dear {case['display_name']}," in compose.text  # notify rendered the template for this student
    form = {
        "csrf_token": form_value(compose.text, "csrf_token"),
        "request_id": form_value(compose.text, "request_id"),
        "subject": form_value(compose.text, "subject"),
        "body": _textarea(compose.text, "body"),
        "action": "send",
    }
    action = urljoin(portal, form_action(compose.text, "/enquiry"))
    first = tutor.post(action, data=form, allow_redirects=False, timeout=10)
    second = tutor.post(action, data=form, allow_redirects=False, timeout=10)  # a double click
    assert first.status_code == 303, first.text
    assert second.status_code == 303, second.text
    assert f"enquiry={form['request_id']}" in first.headers["Location"]

    messages = _eventually(lambda: _mail(running.mailbox), what="the e-mail in the mailbox")
    assert isinstance(messages, list)
    sent_page = _eventually(
        lambda: (
            (p := tutor.get(urljoin(portal, first.headers["Location"]), timeout=10).text)
            and "Sent: the mail server accepted it." in p
            and p
        ),
        what="the case showing the e-mail sent",
    )
    assert isinstance(sent_page, str)
    assert "The student replied" in sent_page
    time.sleep(2)  # give a second copy, if there were one, time to arrive
    [only] = _mail(running.mailbox)
    message = email.message_from_bytes(only.read_bytes(), policy=email.policy.default)
    assert case["display_name"] in str(message["Subject"])
    assert "flag" not in message.as_string().lower()


def test_the_tutor_records_what_they_did_once(running: Running, case: dict[str, str]) -> None:
    portal = running.config.portal_url
    tutor = sign_in(portal, case["tutor"])
    case_path = f"/cases/{case['case_id']}"
    page = tutor.get(f"{portal}{case_path}", timeout=10)
    form = {
        "csrf_token": form_value(page.text, "csrf_token"),
        "idempotency_key": form_value(page.text, "idempotency_key"),
        "kind": "contacted",
        "note": "Spoke after the seminar; coming to office hours.",
    }
    for _ in range(2):
        response = tutor.post(f"{portal}{case_path}/actions", data=form, allow_redirects=False, timeout=10)
        assert response.status_code == 303, response.text
    after = tutor.get(urljoin(portal, response.headers["Location"]), timeout=10)
    assert after.status_code == 200
    assert after.text.count("Spoke after the seminar; coming to office hours.") == 1
