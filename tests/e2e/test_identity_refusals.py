"""Who may see what, through the real interfaces: people sign in to the portal over HTTP, their sessions are turned
into assertions by identity over gRPC, and the refusals the policy demands happen, each with an audit record that
reaches the broker and the audit service. The landing preference is kept by identity and read by the portal."""

from __future__ import annotations

import functools
import time
from collections.abc import Callable, Iterator

import grpc
import psycopg
import pytest
from tend.audit.v1 import events_pb2 as audit_events
from tend.identity.v1 import identity_pb2, identity_pb2_grpc

from tend_testing.flows import form_value, sign_in
from tend_testing.running_suite import RunningSuite

pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("identity-refusals")]

Stub = identity_pb2_grpc.IdentityServiceStub
ES = identity_pb2.PURPOSE_ENGAGEMENT_SUPPORT


def _eventually(query: Callable[[], object], timeout: float = 20.0) -> object:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = query()
        if result:
            return result
        time.sleep(0.1)
    raise AssertionError("not reached in time")


def _one(dsn: str, sql: str, *params: object) -> tuple[object, ...]:
    with psycopg.connect(dsn) as conn:
        row = conn.execute(sql.encode(), params).fetchone()
    assert row is not None
    return tuple(row)


@pytest.fixture(scope="module")
def stub(running_suite: RunningSuite) -> Iterator[Stub]:
    # The test acts as the portal would, with the portal's service credential.
    with running_suite.config.channel_as("portal", "identity") as channel:
        yield identity_pb2_grpc.IdentityServiceStub(channel)


def _assertion_of(running_suite: RunningSuite, stub: Stub, username: str) -> tuple[str, str]:
    """Signs in to the portal over HTTP and turns the portal's session into an assertion for identity, as the portal
    does for its own calls to identity (the stub carries the portal's credential); returns the assertion and the
    person id."""
    browser = sign_in(running_suite.config.portal_url, username)
    session = stub.GetSession(
        identity_pb2.GetSessionRequest(session_token=browser.cookies["tend_session"], audiences=["identity"])
    )
    return session.assertions["identity"], session.person.person_id


def _refusals(running_suite: RunningSuite, actor_id: str, action: str) -> list[audit_events.AuditEvent]:
    events = [
        audit_events.AuditEvent.FromString(m.body)
        for m in running_suite.tap.drain()
        if m.routing_key == "audit.recorded.v1" and m.producer == "identity"
    ]
    return [
        e for e in events if e.actor.id == actor_id and e.action == action and e.outcome == audit_events.OUTCOME_REFUSED
    ]


def _stored_refusal(running_suite: RunningSuite, actor_id: str, action: str, subject_id: str) -> None:
    audit = running_suite.database("audit")
    _eventually(
        lambda: _one(
            audit,
            "SELECT count(*) FROM audit_log WHERE actor_id = %s AND action = %s AND subject_id = %s"
            " AND outcome = 'refused'",
            actor_id,
            action,
            subject_id,
        )[0]
    )


def test_a_tutor_asking_for_another_tutors_tutee_is_refused_and_audited(
    running_suite: RunningSuite, stub: Stub
) -> None:
    assertion, tutor_id = _assertion_of(running_suite, stub, "tutor1")
    identity = running_suite.database("identity")
    (tutee, number) = _one(
        identity,
        "SELECT p.id::text, p.student_number FROM relationships r JOIN people p ON p.id = r.student_id"
        " JOIN people t ON t.id = r.person_id WHERE t.username = 'tutor2' AND r.relation = 'personal_tutor_of'"
        " ORDER BY p.username LIMIT 1",
    )
    pseudonym = stub.MapToPseudonyms(
        identity_pb2.MapToPseudonymsRequest(kind=identity_pb2.IDENTIFIER_KIND_STUDENT_NUMBER, identifiers=[str(number)])
    ).pseudonyms[str(number)]

    resolved = stub.ResolvePseudonyms(
        identity_pb2.ResolvePseudonymsRequest(actor_assertion=assertion, pseudonyms=[pseudonym], purpose=ES)
    )
    decision = stub.CheckAccess(
        identity_pb2.CheckAccessRequest(
            actor_assertion=assertion,
            action="student.view",
            resource=identity_pb2.Resource(kind="student", id=pseudonym),
            data_purpose=ES,
        )
    )

    assert list(resolved.students) == []
    assert not decision.allowed
    assert decision.rule == "student.view"
    for action in ("student.resolve", "student.view"):
        found = _eventually(functools.partial(_refusals, running_suite, tutor_id, action))
        assert isinstance(found, list)
        assert {(e.subject.kind, e.subject.id) for e in found} == {("person", tutee)}
        _stored_refusal(running_suite, tutor_id, action, str(tutee))


def test_a_lecturer_editing_another_schools_module_is_refused_and_audited(
    running_suite: RunningSuite, stub: Stub
) -> None:
    assertion, lecturer_id = _assertion_of(running_suite, stub, "lecturer1")
    identity = running_suite.database("identity")
    (module_id,) = _one(identity, "SELECT id::text FROM modules WHERE code = 'MA101'")

    with pytest.raises(grpc.RpcError) as raised:
        stub.UpdateModule(
            identity_pb2.UpdateModuleRequest(actor_assertion=assertion, module_id=str(module_id), title="Renamed")
        )

    assert raised.value.code() == grpc.StatusCode.PERMISSION_DENIED
    assert "leads" in (raised.value.details() or "")
    assert _one(identity, "SELECT title FROM modules WHERE code = 'MA101'") == ("Calculus",)
    found = _eventually(lambda: _refusals(running_suite, lecturer_id, "module.update"))
    assert isinstance(found, list)
    assert [(e.subject.kind, e.subject.id) for e in found] == [("module", module_id)]
    _stored_refusal(running_suite, lecturer_id, "module.update", str(module_id))


def test_a_faculty_role_asking_for_an_individual_record_is_refused_and_audited(
    running_suite: RunningSuite, stub: Stub
) -> None:
    assertion, pvc_id = _assertion_of(running_suite, stub, "pvc1")
    identity = running_suite.database("identity")
    (student_id,) = _one(identity, "SELECT id::text FROM people WHERE username = 'student001'")

    decision = stub.CheckAccess(
        identity_pb2.CheckAccessRequest(
            actor_assertion=assertion,
            action="student.view",
            resource=identity_pb2.Resource(kind="student", id=str(student_id)),
            data_purpose=ES,
        )
    )
    listed = stub.ListVisibleStudents(identity_pb2.ListVisibleStudentsRequest(actor_assertion=assertion, purpose=ES))
    patterns = stub.ListVisibleStudents(
        identity_pb2.ListVisibleStudentsRequest(actor_assertion=assertion, purpose=identity_pb2.PURPOSE_COHORT_PATTERNS)
    )

    assert not decision.allowed
    assert listed.detail == identity_pb2.DETAIL_LEVEL_NONE
    assert list(listed.students) == []
    assert patterns.detail == identity_pb2.DETAIL_LEVEL_AGGREGATE
    assert list(patterns.students) == []
    found = _eventually(lambda: _refusals(running_suite, pvc_id, "student.view"))
    assert isinstance(found, list)
    assert [(e.subject.kind, e.subject.id) for e in found] == [("person", student_id)]
    _stored_refusal(running_suite, pvc_id, "student.view", str(student_id))
    assert _eventually(lambda: _refusals(running_suite, pvc_id, "student.list"))


def test_the_landing_preference_is_kept_by_identity_and_read_by_the_portal(running_suite: RunningSuite) -> None:
    portal = running_suite.config.portal_url
    identity = running_suite.database("identity")
    (display_name,) = _one(identity, "SELECT display_name FROM people WHERE username = 'director1'")
    first = sign_in(portal, "director1")
    assert str(display_name) not in first.get(f"{portal}/", timeout=10).text

    page = first.get(f"{portal}/preferences", timeout=10)
    saved = first.post(
        f"{portal}/preferences",
        data={"csrf_token": form_value(page.text, "csrf_token"), "landing_page": "overview"},
        timeout=10,
    )
    assert saved.status_code == 200, saved.text

    # Another browser, with none of the first one's cookies.
    second = sign_in(portal, "director1")
    assert str(display_name) in second.get(f"{portal}/", timeout=10).text
    assert _one(identity, "SELECT landing_page FROM preferences p JOIN people x ON x.id = p.person_id"
                " WHERE x.username = 'director1'") == ("overview",)  # fmt: skip
    assert not [cookie.name for cookie in second.cookies if "landing" in cookie.name]
