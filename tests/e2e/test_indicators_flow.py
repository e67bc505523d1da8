"""Indicators through real processes: a check-in, xAPI statements and generic events reach indicators keyed by
pseudonym (identity maps the actors at the door); the serve process recomputes on its own, a flag opens a case
routed to the student's personal tutor by identity, and the tutor reads it over gRPC, audited. Afterwards no name,
e-mail, account name or student number of any source is in indicators' database, logs or published events."""

from __future__ import annotations

import base64
import json
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import grpc
import psycopg
import pytest
import requests
from tend.identity.v1 import identity_pb2, identity_pb2_grpc
from tend.indicators.v1 import indicators_pb2, indicators_pb2_grpc

from tend_common.service_auth import ServiceTokenSigner, authenticated_channel
from tend_testing.canaries import find_in_bytes, find_in_database, find_in_text
from tend_testing.flows import (
    DEMO_PASSWORD,
    check_in_from_scanned_address,
    form_value,
    open_session,
    presented_code,
    sign_in,
)
from tend_testing.processes import ServiceProcess
from tend_testing.running_suite import RunningSuite
from tend_testing.suite import INGEST_SOURCE

pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("indicators-flow")]

QUIET_STUDENT = "student002"
ACTIVE_STUDENT = "student001"


def _eventually(query: Callable[[], object], timeout: float = 30.0) -> object:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = query()
        if result:
            return result
        time.sleep(0.2)
    raise AssertionError("not reached in time")


def _rows(dsn: str, sql: str, *params: object) -> list[tuple[object, ...]]:
    with psycopg.connect(dsn) as conn:
        return conn.execute(sql.encode(), params).fetchall()


def _person(running_suite: RunningSuite, username: str) -> tuple[str, str, str, str]:
    """(person id, display name, e-mail, student number) from identity's database: the values a source system
    would send."""
    [(person_id, name, email, number)] = _rows(
        running_suite.database("identity"),
        "SELECT id::text, display_name, email, coalesce(student_number, '') FROM people WHERE username = %s",
        username,
    )
    return str(person_id), str(name), str(email), str(number)


@pytest.fixture(scope="module")
def ingest_web(running_suite: RunningSuite) -> ServiceProcess:
    """The ingest web process the suite starts beside indicators' serve process (as `make demo` does)."""
    return running_suite.suite.processes["indicators-web"]


@pytest.fixture(scope="module")
def flow(running_suite: RunningSuite, ingest_web: ServiceProcess) -> dict[str, str]:
    """Runs the flow once: a check-in, statements, events; returns what the assertions need."""
    portal = running_suite.config.portal_url
    lecturer = sign_in(portal, "lecturer1")
    presented = presented_code(lecturer, open_session(lecturer, portal, room="Indicators Hall"))
    response = check_in_from_scanned_address(sign_in(portal, ACTIVE_STUDENT), presented.checkin_url)
    assert "You are checked in" in response.text

    base = running_suite.config.indicators_ingest_url
    credentials = f"{INGEST_SOURCE}:{running_suite.config.ingest_source_key}"
    auth = "Basic " + base64.b64encode(credentials.encode()).decode()
    _active_id, active_name, active_email, _n = _person(running_suite, ACTIVE_STUDENT)
    _quiet_id, _quiet_name, _quiet_email, quiet_number = _person(running_suite, QUIET_STUDENT)
    now = datetime.now(UTC)
    statements = [
        {
            "actor": {"name": active_name, "mbox": f"mailto:{active_email}"},
            "verb": {"id": "http://id.tincanapi.com/verb/viewed", "display": {"en": "viewed"}},
            "object": {"id": "https://moodle.example.ac.uk/course/view.php?id=7"},
            "timestamp": now.isoformat(),
        },
        {
            "actor": {"account": {"homePage": "https://moodle.example.ac.uk", "name": ACTIVE_STUDENT}},
            "verb": {"id": "http://activitystrea.ms/schema/1.0/submit"},
            "object": {"id": "https://moodle.example.ac.uk/mod/assign/view.php?id=3"},
            "timestamp": now.isoformat(),
        },
    ]
    posted = requests.post(
        f"{base}/xapi/statements",
        json=statements,
        headers={"Authorization": auth, "X-Experience-API-Version": "1.0.3"},
        timeout=30,
    )
    assert posted.status_code == 200, posted.text
    module_run = str(uuid.uuid5(uuid.NAMESPACE_URL, "tend-indicators-e2e"))
    events = {
        "events": [
            {
                "event_id": f"lib-{QUIET_STUDENT}",
                "student_id_kind": "student_number",
                "student_id": quiet_number,
                "type": "vle_activity",
                "module_run_id": module_run,
                "occurred_at": (now - timedelta(days=20)).isoformat(),
            }
        ]
    }
    sent = requests.post(f"{base}/events", json=events, headers={"Authorization": auth}, timeout=30)
    assert sent.json() == {"received": 1, "stored": 1, "already_stored": 0, "unknown_students": []}
    return {"statements": json.dumps(posted.json()), "session_id": presented.session_id}


def test_every_source_reaches_indicators_by_pseudonym(running_suite: RunningSuite, flow: dict[str, str]) -> None:
    indicators = running_suite.database("indicators")
    _eventually(lambda: _rows(indicators, "SELECT 1 FROM attendance WHERE session_id = %s", flow["session_id"]))
    pseudonyms = {
        row[0] for row in _rows(indicators, "SELECT student_pseudonym FROM engagement_events WHERE source = 'vle'")
    }
    [(active,)] = _rows(
        indicators, "SELECT student_pseudonym FROM attendance WHERE session_id = %s", flow["session_id"]
    )
    # The statement sent by e-mail and the one sent by account name are the same student.
    assert active in pseudonyms
    assert len(pseudonyms) == 2


def test_a_check_in_marked_absent_by_staff_is_withdrawn_from_indicators(
    running_suite: RunningSuite, flow: dict[str, str]
) -> None:
    indicators = running_suite.database("indicators")
    session_id = flow["session_id"]
    _eventually(lambda: _rows(indicators, "SELECT 1 FROM attendance WHERE session_id = %s", session_id))
    [(pseudonym,)] = _rows(indicators, "SELECT student_pseudonym FROM attendance WHERE session_id = %s", session_id)
    [(module_run_id,)] = _rows(
        running_suite.database("checkin"), "SELECT module_run_id FROM teaching_sessions WHERE id = %s", session_id
    )
    portal = running_suite.config.portal_url
    lecturer = sign_in(portal, "lecturer1")
    path = f"{portal}/attendance/sessions/{session_id}?run={module_run_id}"
    page = lecturer.get(path, timeout=10)
    assert page.status_code == 200, page.text
    marked = lecturer.post(
        path,
        data={"csrf_token": form_value(page.text, "csrf_token"), "reason": "NO_DEVICE", f"mark-{pseudonym}": "absent"},
        timeout=30,
    )
    assert marked.status_code == 200, marked.text
    # Checkin publishes AttendanceWithdrawn; indicators removes the mark and keeps the session as held.
    _eventually(lambda: not _rows(indicators, "SELECT 1 FROM attendance WHERE session_id = %s", session_id))
    assert _rows(
        indicators, "SELECT student_pseudonym FROM attendance_withdrawals WHERE session_id = %s", session_id
    ) == [(pseudonym,)]


def test_the_serve_process_raises_a_flag_and_routes_the_case_to_the_tutor(
    running_suite: RunningSuite, flow: dict[str, str]
) -> None:
    indicators = running_suite.database("indicators")
    cases = _eventually(lambda: _rows(indicators, "SELECT case_id::text, routed FROM cases WHERE routed"), timeout=60)
    assert isinstance(cases, list)
    [(case_id, _routed)] = cases
    [(rule, sentence)] = _rows(indicators, "SELECT rule, sentence FROM flags WHERE case_id = %s", case_id)
    assert rule == "no_engagement"
    assert "consecutive term days" in str(sentence)
    staff = _rows(
        indicators, "SELECT person_id, relationship FROM case_staff WHERE case_id = %s ORDER BY position", case_id
    )
    (tutor, relationship) = staff[0]
    assert relationship == "personal_tutor"
    [(username,)] = _rows(running_suite.database("identity"), "SELECT username FROM people WHERE id::text = %s", tutor)

    # The test acts as the portal: signs the tutor in with identity and calls indicators for them.
    portal = ServiceTokenSigner("portal", running_suite.config.service_keys["portal"])
    identity = identity_pb2_grpc.IdentityServiceStub(
        authenticated_channel(f"127.0.0.1:{running_suite.config.ports.identity_grpc}", portal, "identity")
    )
    session = identity.SignIn(identity_pb2.SignInRequest(username=str(username), password=DEMO_PASSWORD))
    assertion = identity.GetSession(
        identity_pb2.GetSessionRequest(session_token=session.session_token, audiences=["indicators"])
    ).assertions["indicators"]
    channel = authenticated_channel(f"127.0.0.1:{running_suite.config.ports.indicators_grpc}", portal, "indicators")
    stub = indicators_pb2_grpc.IndicatorsServiceStub(channel)
    listed = stub.ListCases(indicators_pb2.ListCasesRequest(actor_assertion=assertion))
    assert [case.case_id for case in listed.cases] == [case_id]
    summary = stub.GetEngagementSummary(
        indicators_pb2.GetEngagementSummaryRequest(
            actor_assertion=assertion,
            student_pseudonym=listed.cases[0].student_pseudonym,
            purpose=indicators_pb2.SUMMARY_PURPOSE_ENGAGEMENT_SUPPORT,
        )
    )
    assert [flag.rule for flag in summary.flags] == ["no_engagement"]
    # The tutor records what they did, then closes the case with an outcome.
    noted = stub.RecordCaseAction(
        indicators_pb2.RecordCaseActionRequest(
            actor_assertion=assertion,
            case_id=case_id,
            kind=indicators_pb2.CASE_ACTION_KIND_CONTACTED,
            note="Phoned; will come to office hours.",
            request_id=str(uuid.uuid4()),
        )
    )
    assert noted.case.history[-1].actor_person_id == tutor
    closed = stub.RecordCaseAction(
        indicators_pb2.RecordCaseActionRequest(
            actor_assertion=assertion,
            case_id=case_id,
            kind=indicators_pb2.CASE_ACTION_KIND_CLOSE,
            note="Back on track.",
            request_id=str(uuid.uuid4()),
        )
    )
    assert closed.case.status == indicators_pb2.CASE_STATUS_CLOSED
    # A call without the portal's service credential is refused.
    with pytest.raises(grpc.RpcError) as refused:
        indicators_pb2_grpc.IndicatorsServiceStub(
            grpc.insecure_channel(f"127.0.0.1:{running_suite.config.ports.indicators_grpc}")
        ).ListCases(indicators_pb2.ListCasesRequest(actor_assertion=assertion))
    assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED
    # The reads were audited: the records reach the audit service.
    audited = _eventually(
        lambda: [
            m for m in running_suite.tap.drain() if m.producer == "indicators" and m.routing_key == "audit.recorded.v1"
        ]
    )
    assert isinstance(audited, list)
    assert len(audited) >= 2
    published = {m.routing_key for m in running_suite.tap.drain() if m.producer == "indicators"}
    assert {"indicators.indicator_raised.v1", "indicators.case_updated.v1"} <= published
    [(status, outcome)] = _rows(indicators, "SELECT status, outcome FROM cases WHERE case_id = %s", case_id)
    assert (status, outcome) == ("closed", "Back on track.")


def test_privacy_canaries_never_reach_indicators(
    running_suite: RunningSuite, flow: dict[str, str], ingest_web: ServiceProcess
) -> None:
    _eventually(lambda: _rows(running_suite.database("indicators"), "SELECT 1 FROM cases WHERE routed"), timeout=60)
    canaries = [*running_suite.canaries, ACTIVE_STUDENT, QUIET_STUDENT]
    hits = find_in_database(running_suite.database("indicators"), canaries)
    hits += find_in_text(running_suite.suite.logs("indicators"), canaries, "indicators log")
    hits += find_in_text(ingest_web.read_log(), canaries, "indicators-web log")
    published = [m.body for m in running_suite.tap.drain() if m.producer == "indicators"]
    assert published
    hits += find_in_bytes(published, canaries, "indicators events")
    assert hits == []
