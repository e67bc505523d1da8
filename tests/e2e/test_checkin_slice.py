"""The thin slice through real processes: a lecturer opens a session and shows its code, a student checks in
from the scanned address, indicators stores the attendance by pseudonym, audit records that the session was opened,
and checkin never held anything that identifies a person."""

from __future__ import annotations

import time
from collections.abc import Callable

import psycopg
import pytest
from tend.audit.v1 import events_pb2 as audit_events
from tend.checkin.v1 import events_pb2 as checkin_events

from tend_testing.canaries import find_in_bytes, find_in_database, find_in_redis, find_in_text
from tend_testing.flows import check_in_from_scanned_address, open_session, presented_code, sign_in
from tend_testing.running_suite import RunningSuite

pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("checkin-slice")]


def _eventually(query: Callable[[], object], timeout: float = 20.0) -> object:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = query()
        if result:
            return result
        time.sleep(0.1)
    raise AssertionError("not reached in time")


def _rows(dsn: str, sql: str, *params: object) -> list[tuple[object, ...]]:
    with psycopg.connect(dsn) as conn:
        return conn.execute(sql.encode(), params).fetchall()


@pytest.fixture(scope="module")
def checked_in(running_suite: RunningSuite) -> dict[str, str]:
    """Runs the flow once for the module's assertions; returns ids the assertions need."""
    portal = running_suite.config.portal_url
    lecturer = sign_in(portal, "lecturer1")
    presenter_url = open_session(lecturer, portal)
    presented = presented_code(lecturer, presenter_url)
    student = sign_in(portal, "student001")
    response = check_in_from_scanned_address(student, presented.checkin_url)
    assert response.status_code == 200, response.text
    assert "You are checked in" in response.text
    again = check_in_from_scanned_address(student, presented.checkin_url)
    assert "already checked in" in again.text
    lecturer_id = lecturer.get(f"{portal}/me", timeout=10)
    assert lecturer_id.status_code == 200
    return {"session_id": presented.session_id, "checkin_url": presented.checkin_url}


def test_attendance_reaches_indicators_once_by_pseudonym(
    running_suite: RunningSuite, checked_in: dict[str, str]
) -> None:
    indicators = running_suite.database("indicators")
    rows = _eventually(
        lambda: _rows(
            indicators,
            "SELECT student_pseudonym, source FROM attendance WHERE session_id = %s",
            checked_in["session_id"],
        )
    )
    assert isinstance(rows, list)
    [(pseudonym, source)] = rows
    assert source == "code"
    identity = running_suite.database("identity")
    [(person_kind, username)] = _rows(
        identity,
        "SELECT p.kind, p.username FROM pseudonyms ps JOIN people p ON p.id = ps.person_id WHERE ps.pseudonym = %s",
        pseudonym,
    )
    assert (person_kind, username) == ("student", "student001")


def test_audit_records_that_the_lecturer_opened_the_session(
    running_suite: RunningSuite, checked_in: dict[str, str]
) -> None:
    audit = running_suite.database("audit")
    rows = _eventually(
        lambda: _rows(
            audit,
            "SELECT actor_kind, actor_id, origin_service, outcome FROM audit_log"
            " WHERE action = 'teaching_session.open' AND subject_id = %s",
            checked_in["session_id"],
        )
    )
    assert isinstance(rows, list)
    [(actor_kind, actor_id, origin, outcome)] = rows
    identity = running_suite.database("identity")
    [(username,)] = _rows(identity, "SELECT username FROM people WHERE id::text = %s", actor_id)
    assert (actor_kind, username, origin, outcome) == ("person", "lecturer1", "checkin", "allowed")


def test_checkin_published_a_confirmed_attendance_event_with_a_pseudonym_only(
    running_suite: RunningSuite, checked_in: dict[str, str]
) -> None:
    messages = [m for m in running_suite.tap.drain() if m.routing_key == "checkin.attendance_recorded.v1"]
    [message] = {m.event_id: m for m in messages}.values()
    event = checkin_events.AttendanceRecorded.FromString(message.body)
    assert event.session_id == checked_in["session_id"]
    assert event.student_pseudonym.startswith("p_")
    assert message.producer == "checkin"
    opened = [
        audit_events.AuditEvent.FromString(m.body)
        for m in running_suite.tap.drain()
        if m.routing_key == "audit.recorded.v1" and m.producer == "checkin"
    ]
    assert [e.action for e in opened] == ["teaching_session.open"]


def test_privacy_canaries_never_reach_checkin(running_suite: RunningSuite, checked_in: dict[str, str]) -> None:
    canaries = running_suite.canaries
    config = running_suite.config
    hits = find_in_database(running_suite.database("checkin"), canaries)
    hits += find_in_redis(config.redis_url, config.redis_prefix, canaries)
    for process in ("checkin", "checkin-web"):
        hits += find_in_text(running_suite.suite.logs(process), canaries, f"{process} log")
    published = [m.body for m in running_suite.tap.drain() if m.producer == "checkin"]
    assert published, "checkin should have published events"
    hits += find_in_bytes(published, canaries, "message published by checkin")
    assert hits == []


def test_canary_check_would_notice_a_leak(running_suite: RunningSuite) -> None:
    # Guards the privacy tests themselves: the scanners find a canary wherever one is put.
    canary = running_suite.canaries[0]
    assert find_in_text(f"log line {canary.upper()}", [canary], "log") != []
    assert find_in_bytes([canary.encode()], [canary], "message") != []
    identity_hits = find_in_database(running_suite.database("identity"), [canary])
    assert identity_hits, "the canary is in identity's database, where it belongs"
