"""The portal's identity, audit and timetable pages through real processes: signing in with the institution's
OpenID Connect provider (a real one, started by the test), signing out everywhere, a break-glass grant that the
student then sees in "who has accessed my record" and the data protection officer finds, reviews and downloads
(audit accepting the portal's assertions for audience "audit"), also by the student's number and by a member of
staff's staff number (identity's FindPerson), a timetable import, and module management (a school administrator
withdraws and restores a module; a lecturer of another school is refused)."""

from __future__ import annotations

import csv
import io
import json
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import urlencode

import psycopg
import pytest
import requests

from services.identity.tests.oidc_provider import OidcProvider, running_provider
from tend_identity.demo import demo_id
from tend_testing.backends import Backends
from tend_testing.flows import form_value, sign_in
from tend_testing.namespaces import new_amqp_namespace
from tend_testing.running_suite import DatabaseFactory
from tend_testing.suite import BACK_END_SERVICES, Suite, SuiteConfig, SuitePorts, run_command

pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("portal-audit-pages")]

CLIENT_ID = "tend-portal"
CLIENT_SECRET = "an-e2e-client-secret"
INSTITUTION = "Demo University"
REASON = "Student reported missing by family; welfare check needed tonight"


def _eventually(query: Callable[[], object], timeout: float = 30.0) -> object:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = query()
        if result:
            return result
        time.sleep(0.25)
    raise AssertionError("not reached in time")


class PortalSuite:
    def __init__(self, config: SuiteConfig, provider: OidcProvider) -> None:
        self.config = config
        self.provider = provider
        self.url = config.portal_url

    def display_name(self, username: str) -> str:
        with psycopg.connect(self.config.databases["identity"]) as conn:
            row = conn.execute("SELECT display_name FROM people WHERE username = %s", (username,)).fetchone()
        assert row is not None
        return str(row[0])

    def module_deleted(self, code: str) -> bool:
        with psycopg.connect(self.config.databases["identity"]) as conn:
            row = conn.execute("SELECT deleted_at IS NOT NULL FROM modules WHERE code = %s", (code,)).fetchone()
        assert row is not None
        return bool(row[0])

    def staff_number(self, username: str) -> str:
        with psycopg.connect(self.config.databases["identity"]) as conn:
            row = conn.execute("SELECT staff_number FROM people WHERE username = %s", (username,)).fetchone()
        assert row is not None
        assert row[0]
        return str(row[0])

    def student_number(self, username: str) -> str:
        with psycopg.connect(self.config.databases["identity"]) as conn:
            row = conn.execute("SELECT student_number FROM people WHERE username = %s", (username,)).fetchone()
        assert row is not None
        assert row[0]
        return str(row[0])


@pytest.fixture(scope="module")
def portal_suite(
    backends: Backends,
    module_database_factory: DatabaseFactory,
    tmp_path_factory: pytest.TempPathFactory,
    _amqp_cleanup: None,
) -> Iterator[PortalSuite]:
    ports = SuitePorts.free()
    callback = f"http://127.0.0.1:{ports.portal_http}/sign-in/oidc/callback"
    with running_provider(CLIENT_ID, CLIENT_SECRET, callback) as provider:
        config = SuiteConfig(
            ports=ports,
            databases={service: module_database_factory(f"tend_{service}.migrations") for service in BACK_END_SERVICES},
            amqp_url=backends.amqp_url,
            amqp_namespace=new_amqp_namespace(),
            redis_url=backends.redis_url,
            redis_prefix=f"test:{uuid.uuid4().hex[:12]}:checkin:",
            extra_settings={
                "identity": {
                    "OIDC_ISSUER": provider.issuer,
                    "OIDC_CLIENT_ID": CLIENT_ID,
                    "OIDC_CLIENT_SECRET": CLIENT_SECRET,
                    "OIDC_REDIRECT_URIS": callback,
                },
                "portal": {"OIDC_INSTITUTION_NAME": INSTITUTION},
            },
        )
        run_command(config, "identity", "load-demo")
        suite = Suite(config, Path(tmp_path_factory.mktemp("portal-audit-logs")))
        try:
            suite.start()
            yield PortalSuite(config, provider)
        finally:
            suite.stop()


def _sign_in_with_provider(portal: PortalSuite, username: str) -> requests.Session:
    """A browser that presses "Sign in with ...", is signed in at the provider as `username`, and comes back."""
    portal.provider.signed_in = portal.provider.add_user(username)
    browser = requests.Session()
    page = browser.get(f"{portal.url}/sign-in", timeout=10)
    assert f"Sign in with {INSTITUTION}" in page.text
    started = browser.post(
        f"{portal.url}/sign-in/oidc",
        data={"csrf_token": form_value(page.text, "csrf_token"), "next": "/me"},
        allow_redirects=False,
        timeout=10,
    )
    assert started.status_code == 303, started.text
    at_provider = browser.get(started.headers["Location"], allow_redirects=False, timeout=10)
    assert at_provider.status_code == 302, at_provider.text
    assert at_provider.headers["Location"].startswith(f"{portal.url}/sign-in/oidc/callback?")
    back = browser.get(at_provider.headers["Location"], allow_redirects=False, timeout=10)
    assert back.status_code == 303, back.text
    assert back.headers["Location"] == "/me"
    return browser


def _post(browser: requests.Session, url: str, page_url: str, data: dict[str, str]) -> requests.Response:
    page = browser.get(page_url, timeout=10)
    return browser.post(url, data={**data, "csrf_token": form_value(page.text, "csrf_token")}, timeout=10)


def test_signing_in_with_the_institution_and_out_everywhere(portal_suite: PortalSuite) -> None:
    url = portal_suite.url
    with_provider = _sign_in_with_provider(portal_suite, "tutor1")
    with_password = sign_in(url, "tutor1")
    assert with_provider.get(f"{url}/me", timeout=10).status_code == 200
    assert with_password.get(f"{url}/me", timeout=10).status_code == 200

    ended = _post(with_password, f"{url}/sign-out-everywhere", f"{url}/me", {})

    assert ended.status_code == 200, ended.text
    assert "You are signed out everywhere" in ended.text
    for browser in (with_provider, with_password):
        after = browser.get(f"{url}/me", allow_redirects=False, timeout=10)
        assert after.status_code == 303
        assert "/sign-in" in after.headers["Location"]


def test_a_forged_callback_signs_nobody_in(portal_suite: PortalSuite) -> None:
    browser = requests.Session()
    response = browser.get(f"{portal_suite.url}/sign-in/oidc/callback?state=forged&code=forged", timeout=10)
    assert response.status_code == 400
    assert "tend_session" not in browser.cookies


@pytest.fixture(scope="module")
def break_glass_grant(portal_suite: PortalSuite) -> str:
    """lecturer1 asks for break-glass access to student001 through the portal; returns the student's person id."""
    url = portal_suite.url
    lecturer = sign_in(url, "lecturer1")
    granted = _post(
        lecturer,
        f"{url}/break-glass",
        f"{url}/break-glass",
        {"student": portal_suite.student_number("student001"), "reason": REASON},
    )
    assert granted.status_code == 200, granted.text
    assert "Access granted until" in granted.text
    return str(demo_id("person", "student001"))


def test_the_student_sees_who_accessed_their_record(portal_suite: PortalSuite, break_glass_grant: str) -> None:
    student = sign_in(portal_suite.url, "student001")
    lecturer_id = str(demo_id("person", "lecturer1"))

    page = _eventually(
        lambda: (
            (p := student.get(f"{portal_suite.url}/my-record/accesses", timeout=10)).status_code == 200
            and "break_glass.grant" in p.text
            and p
        )
    )

    assert isinstance(page, requests.Response)
    assert f"Person {lecturer_id}" in page.text


def test_the_officer_finds_reviews_and_downloads(portal_suite: PortalSuite, break_glass_grant: str) -> None:
    url = portal_suite.url
    officer = sign_in(url, "dpo1")
    assert 'href="/audit"' in officer.get(f"{url}/", timeout=10).text
    query = {"question": "accesses_to_person", "person": break_glass_grant, "purpose": "subject access request"}

    found = _eventually(
        lambda: "break_glass.grant" in (p := officer.get(f"{url}/audit?{urlencode(query)}", timeout=10)).text and p
    )
    assert isinstance(found, requests.Response)
    assert found.status_code == 200

    grants = officer.get(f"{url}/audit/break-glass", timeout=10)
    assert grants.status_code == 200, grants.text
    assert REASON in grants.text
    assert break_glass_grant in grants.text

    download = officer.get(f"{url}/audit/export?{urlencode({**query, 'format': 'csv'})}", timeout=30)
    assert download.status_code == 200, download.text
    assert download.headers["Content-Disposition"].startswith("attachment;")
    rows = list(csv.DictReader(io.StringIO(download.text)))
    assert any(break_glass_grant in row.values() and "break_glass.grant" in row.values() for row in rows), rows
    as_json = officer.get(f"{url}/audit/export?{urlencode({**query, 'format': 'json'})}", timeout=30)
    assert as_json.status_code == 200
    records = as_json.json()["records"]
    assert any("break_glass.grant" in json.dumps(record) for record in records), records


def test_the_officer_searches_by_student_number(portal_suite: PortalSuite, break_glass_grant: str) -> None:
    url = portal_suite.url
    officer = sign_in(url, "dpo1")
    number = portal_suite.student_number("student001")
    query = {"question": "accesses_to_person", "person": number, "purpose": "subject access request"}

    found = _eventually(
        lambda: "break_glass.grant" in (p := officer.get(f"{url}/audit?{urlencode(query)}", timeout=10)).text and p
    )

    assert isinstance(found, requests.Response)
    assert found.status_code == 200
    assert f"Person: {portal_suite.display_name('student001')}, Tend id {break_glass_grant}." in found.text
    # The look-up itself is on the record, naming the person and not the number typed.
    looked_up = {"question": "accesses_to_person", "person": break_glass_grant, "purpose": "routine review"}
    page = _eventually(
        lambda: "person.find" in (p := officer.get(f"{url}/audit?{urlencode(looked_up)}", timeout=10)).text and p
    )
    assert isinstance(page, requests.Response)
    assert number not in page.text.replace(f"person={number}", "")
    lecturer = sign_in(url, "lecturer1")
    refused = lecturer.get(f"{url}/audit?{urlencode(query)}", timeout=10)
    assert refused.status_code == 403
    assert portal_suite.display_name("student001") not in refused.text


def test_the_officer_searches_by_staff_number(portal_suite: PortalSuite, break_glass_grant: str) -> None:
    url = portal_suite.url
    officer = sign_in(url, "dpo1")
    number = portal_suite.staff_number("lecturer1")
    query = {"question": "actions_by_person", "person": number, "purpose": "investigation of a concern"}

    found = _eventually(
        lambda: "break_glass.grant" in (p := officer.get(f"{url}/audit?{urlencode(query)}", timeout=10)).text and p
    )

    assert isinstance(found, requests.Response)
    assert found.status_code == 200
    lecturer_id = str(demo_id("person", "lecturer1"))
    assert f"Person: {portal_suite.display_name('lecturer1')}, Tend id {lecturer_id}." in found.text
    refused = sign_in(url, "tutor1").get(f"{url}/audit?{urlencode(query)}", timeout=10)
    assert refused.status_code == 403
    assert portal_suite.display_name("lecturer1") not in refused.text


def test_a_school_administrator_withdraws_and_restores_a_module(portal_suite: PortalSuite) -> None:
    url = portal_suite.url
    admin = sign_in(url, "schooladmin1")
    se101 = str(demo_id("module", "SE101"))
    listed = admin.get(f"{url}/modules", timeout=10)
    assert listed.status_code == 200, listed.text
    assert f'action="/modules/{se101}/delete"' in listed.text

    withdrawn = _post(admin, f"{url}/modules/{se101}/delete", f"{url}/modules", {})
    assert withdrawn.status_code == 200, withdrawn.text  # followed the redirect back to the list
    assert "SE101 Software Engineering Practice was withdrawn." in withdrawn.text
    assert f'action="/modules/{se101}/restore"' in withdrawn.text
    assert portal_suite.module_deleted("SE101")

    restored = _post(admin, f"{url}/modules/{se101}/restore", f"{url}/modules", {})
    assert restored.status_code == 200, restored.text
    assert "SE101 Software Engineering Practice was restored." in restored.text
    assert not portal_suite.module_deleted("SE101")


def test_a_lecturer_of_another_school_may_not_change_a_module(portal_suite: PortalSuite) -> None:
    url = portal_suite.url
    lecturer = sign_in(url, "tutor2")  # leads MA101 and MA102 in the School of Mathematics
    cs101 = str(demo_id("module", "CS101"))
    listed = lecturer.get(f"{url}/modules", timeout=10)
    assert listed.status_code == 200, listed.text
    assert "MA101" in listed.text
    assert "CS101" not in listed.text

    for path, data in [(f"/modules/{cs101}/title", {"title": "Taken over"}), (f"/modules/{cs101}/delete", {})]:
        refused = _post(lecturer, f"{url}{path}", f"{url}/modules", data)
        assert refused.status_code == 403, refused.text
        assert "You can&#39;t change this module" in refused.text
    assert not portal_suite.module_deleted("CS101")


def test_audit_refuses_a_lecturer_the_log(portal_suite: PortalSuite) -> None:
    lecturer = sign_in(portal_suite.url, "lecturer1")
    query = {"question": "refused_attempts", "purpose": "routine review"}
    response = lecturer.get(f"{portal_suite.url}/audit?{urlencode(query)}", timeout=10)
    assert response.status_code == 403
    assert "You do not have access to these audit records" in response.text
    assert 'href="/audit"' not in lecturer.get(f"{portal_suite.url}/", timeout=10).text


def test_a_lecturer_imports_a_timetable(portal_suite: PortalSuite) -> None:
    url = portal_suite.url
    lecturer = sign_in(url, "lecturer1")
    form = lecturer.get(f"{url}/timetable", timeout=10)
    assert form.status_code == 200, form.text
    run = form.text.split('<option value="', 2)[2].split('"', 1)[0]  # the first module run offered
    start = (datetime.now(UTC) + timedelta(days=7)).replace(hour=9, minute=0, second=0, microsecond=0)
    ics = (
        "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//e2e//EN\r\nBEGIN:VEVENT\r\n"
        f"UID:e2e-{uuid.uuid4()}@timetable.example.ac.uk\r\nDTSTAMP:20260101T000000Z\r\n"
        f"DTSTART:{start:%Y%m%dT%H%M%SZ}\r\nDTEND:{start + timedelta(minutes=50):%Y%m%dT%H%M%SZ}\r\n"
        "LOCATION:Main Building LT1\r\nSUMMARY:Lecture\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n"
    ).encode()

    def upload(content: bytes) -> requests.Response:
        return lecturer.post(
            f"{url}/timetable",
            data={"csrf_token": form_value(form.text, "csrf_token"), "module_run_id": run, "timezone": "Europe/London"},
            files={"timetable_file": ("autumn.ics", content, "text/calendar")},
            timeout=20,
        )

    first = upload(ics)
    assert first.status_code == 200, first.text
    assert "1 session added" in first.text
    again = upload(ics)
    assert "0 sessions added, 0 changed, 1 already up to date" in again.text
    broken = upload(ics.replace(b"DTSTART:", b"DTSTART:not-a-time"))
    assert broken.status_code == 400
    assert "The timetable was not imported" in broken.text
    assert "Line " in broken.text
