"""The RPCs around the policy, over a real gRPC server and the demo university: visible students, pseudonym
resolution and mapping, responsible staff, preferences, sign-out everywhere, break-glass, module management and
contact details. Every disclosure must leave its audit record in the outbox before the answer."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import grpc
import pytest
from google.protobuf.timestamp_pb2 import Timestamp
from psycopg_pool import ConnectionPool
from tend.audit.v1 import events_pb2
from tend.identity.v1 import identity_pb2, identity_pb2_grpc

from services.identity.tests.kek import TEST_WRAPPING
from tend_identity import demo, sessions
from tend_identity.signing import Keyring
from tend_identity.store import keys as key_store
from tend_identity.store.people import NewPerson

Stub = identity_pb2_grpc.IdentityServiceStub
ES = identity_pb2.PURPOSE_ENGAGEMENT_SUPPORT
CS101 = str(demo.demo_id("module_run", "CS101"))
MA101_MODULE = str(demo.demo_id("module", "MA101"))
CS101_MODULE = str(demo.demo_id("module", "CS101"))


def _session(pool: ConnectionPool, username: str) -> str:
    with pool.connection() as conn:
        return sessions.open_session(conn, demo.demo_id("person", username), datetime.now(UTC) + timedelta(hours=1))


def _assertion(stub: Stub, pool: ConnectionPool, username: str) -> str:
    response = stub.GetSession(
        identity_pb2.GetSessionRequest(session_token=_session(pool, username), audiences=["portal"])
    )
    return str(response.assertions["portal"])


def _audit(pool: ConnectionPool) -> list[events_pb2.AuditEvent]:
    with pool.connection() as conn:
        rows = conn.execute("SELECT body FROM outbox ORDER BY id").fetchall()
    return [events_pb2.AuditEvent.FromString(bytes(row[0])) for row in rows]


def _tutees(pool: ConnectionPool, tutor: str) -> list[uuid.UUID]:
    with pool.connection() as conn:
        rows = conn.execute(
            "SELECT student_id FROM relationships WHERE person_id = %s AND relation = 'personal_tutor_of'"
            " ORDER BY student_id",
            (demo.demo_id("person", tutor),),
        ).fetchall()
    return [row[0] for row in rows]


def _pseudonym(pool: ConnectionPool, person_id: uuid.UUID) -> str:
    from tend_identity import pseudonyms

    with pool.connection() as conn:
        return pseudonyms.pseudonym_of(conn, TEST_WRAPPING, person_id, "2026/27")


def test_a_tutor_lists_their_tutees_individually_and_each_is_audited(stub: Stub, demo_pool: ConnectionPool) -> None:
    response = stub.ListVisibleStudents(
        identity_pb2.ListVisibleStudentsRequest(actor_assertion=_assertion(stub, demo_pool, "tutor1"), purpose=ES)
    )

    assert response.detail == identity_pb2.DETAIL_LEVEL_INDIVIDUAL
    assert len(response.students) == len(_tutees(demo_pool, "tutor1"))
    assert all(s.pseudonym.startswith("p_") and s.student_number.startswith("CN") for s in response.students)
    assert not any(s.sponsored_visa for s in response.students)
    audited = _audit(demo_pool)
    assert {(e.action, e.subject.kind, e.outcome) for e in audited} == {
        ("student.list", "person", events_pb2.OUTCOME_ALLOWED)
    }
    assert {e.subject.id for e in audited} == {str(s) for s in _tutees(demo_pool, "tutor1")}


def test_a_faculty_role_gets_aggregates_only(stub: Stub, demo_pool: ConnectionPool) -> None:
    pvc = _assertion(stub, demo_pool, "pvc1")
    support = stub.ListVisibleStudents(identity_pb2.ListVisibleStudentsRequest(actor_assertion=pvc, purpose=ES))
    cohort = stub.ListVisibleStudents(
        identity_pb2.ListVisibleStudentsRequest(actor_assertion=pvc, purpose=identity_pb2.PURPOSE_COHORT_PATTERNS)
    )

    assert support.detail == identity_pb2.DETAIL_LEVEL_NONE
    assert cohort.detail == identity_pb2.DETAIL_LEVEL_AGGREGATE
    assert cohort.cohort_size == 200
    assert not cohort.suppressed
    assert list(cohort.students) == []
    assert [(e.action, e.outcome) for e in _audit(demo_pool)] == [
        ("student.list", events_pb2.OUTCOME_REFUSED),
        ("cohort.view", events_pb2.OUTCOME_ALLOWED),
    ]


def test_attendance_correction_needs_a_module_run(stub: Stub, demo_pool: ConnectionPool) -> None:
    with pytest.raises(grpc.RpcError) as raised:
        stub.ListVisibleStudents(
            identity_pb2.ListVisibleStudentsRequest(
                actor_assertion=_assertion(stub, demo_pool, "lecturer1"),
                purpose=identity_pb2.PURPOSE_ATTENDANCE_CORRECTION,
            )
        )
    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    listed = stub.ListVisibleStudents(
        identity_pb2.ListVisibleStudentsRequest(
            actor_assertion=_assertion(stub, demo_pool, "lecturer1"),
            purpose=identity_pb2.PURPOSE_ATTENDANCE_CORRECTION,
            module_run_id=CS101,
        )
    )
    with demo_pool.connection() as conn:
        row = conn.execute("SELECT count(*) FROM enrolments WHERE module_run_id = %s", (CS101,)).fetchone()
    assert row is not None
    assert len(listed.students) == row[0]


def test_resolving_leaves_out_students_the_person_may_not_see(stub: Stub, demo_pool: ConnectionPool) -> None:
    own, other = _tutees(demo_pool, "tutor1")[0], _tutees(demo_pool, "tutor2")[0]
    own_p, other_p = _pseudonym(demo_pool, own), _pseudonym(demo_pool, other)

    response = stub.ResolvePseudonyms(
        identity_pb2.ResolvePseudonymsRequest(
            actor_assertion=_assertion(stub, demo_pool, "tutor1"), pseudonyms=[own_p, other_p, "p_unknown"], purpose=ES
        )
    )

    assert [s.pseudonym for s in response.students] == [own_p]
    assert [(e.subject.kind, e.subject.id, e.outcome) for e in _audit(demo_pool)] == [
        ("person", str(own), events_pb2.OUTCOME_ALLOWED),
        ("person", str(other), events_pb2.OUTCOME_REFUSED),
        ("pseudonym", "p_unknown", events_pb2.OUTCOME_REFUSED),
    ]


def test_a_disclosure_is_not_made_when_its_audit_record_cannot_be(stub: Stub, demo_pool: ConnectionPool) -> None:
    assertion = _assertion(stub, demo_pool, "tutor1")
    with demo_pool.connection() as conn:
        conn.execute("ALTER TABLE outbox ADD CONSTRAINT no_more_records CHECK (false) NOT VALID")

    with pytest.raises(grpc.RpcError) as raised:
        stub.ListVisibleStudents(identity_pb2.ListVisibleStudentsRequest(actor_assertion=assertion, purpose=ES))
    assert raised.value.code() == grpc.StatusCode.INTERNAL
    assert raised.value.details() == "internal error"


@pytest.mark.parametrize(
    ("kind", "value_of"),
    [
        (identity_pb2.IDENTIFIER_KIND_STUDENT_NUMBER, lambda p: p.student_number),
        (identity_pb2.IDENTIFIER_KIND_EMAIL, lambda p: p.email.upper()),
        (identity_pb2.IDENTIFIER_KIND_USERNAME, lambda p: p.username),
    ],
)
def test_source_identifiers_map_to_pseudonyms_for_students_only(
    stub: Stub,
    demo_pool: ConnectionPool,
    kind: identity_pb2.IdentifierKind.ValueType,
    value_of: Callable[[NewPerson], str | None],
) -> None:
    university = demo.build_demo()
    student = next(p for p in university.people if p.username == "student001")
    staff = next(p for p in university.people if p.username == "lecturer1")
    identifiers = [value_of(student) or "", value_of(staff) or "nobody", "never-seen"]

    response = stub.MapToPseudonyms(identity_pb2.MapToPseudonymsRequest(kind=kind, identifiers=identifiers))

    assert dict(response.pseudonyms) == {identifiers[0]: _pseudonym(demo_pool, student.id)}
    next_year = stub.MapToPseudonyms(
        identity_pb2.MapToPseudonymsRequest(kind=kind, identifiers=identifiers[:1], academic_year="2027/28")
    )
    assert next_year.pseudonyms[identifiers[0]] != response.pseudonyms[identifiers[0]]


def test_responsible_staff_start_with_the_personal_tutor(stub: Stub, demo_pool: ConnectionPool) -> None:
    with demo_pool.connection() as conn:
        row = conn.execute(
            "SELECT p.id FROM people p JOIN programmes pg ON pg.id = p.programme_id"
            " WHERE pg.code = 'BSC-CS' AND p.level = 1 AND p.sponsored_visa ORDER BY p.username LIMIT 1"
        ).fetchone()
    assert row is not None
    response = stub.ListResponsibleStaff(
        identity_pb2.ListResponsibleStaffRequest(pseudonym=_pseudonym(demo_pool, row[0]))
    )

    by_name = {
        str(demo.demo_id("person", name)): name for name in ("tutor1", "leveltutor1", "director1", "support1", "visa1")
    }
    assert [(by_name.get(s.person_id, s.person_id), s.relationship) for s in response.staff] == [
        ("tutor1", "personal_tutor"),
        ("leveltutor1", "level_tutor"),
        ("director1", "director_of_school"),
        ("support1", "student_services"),
        ("visa1", "visa_immigration"),
    ]
    with pytest.raises(grpc.RpcError) as raised:
        stub.ListResponsibleStaff(identity_pb2.ListResponsibleStaffRequest(pseudonym="p_unknown"))
    assert raised.value.code() == grpc.StatusCode.NOT_FOUND


def test_preferences_are_kept_on_the_server_and_default_to_the_safe_page(stub: Stub, demo_pool: ConnectionPool) -> None:
    first, second = _session(demo_pool, "lecturer1"), _session(demo_pool, "lecturer1")

    assert stub.GetPreferences(identity_pb2.GetPreferencesRequest(session_token=first)).preferences.landing_page == (
        identity_pb2.LANDING_PAGE_ACTIONS
    )
    stub.SetPreferences(
        identity_pb2.SetPreferencesRequest(
            session_token=first, preferences=identity_pb2.Preferences(landing_page=identity_pb2.LANDING_PAGE_OVERVIEW)
        )
    )
    # Another browser, another session: the same preference.
    assert stub.GetPreferences(identity_pb2.GetPreferencesRequest(session_token=second)).preferences.landing_page == (
        identity_pb2.LANDING_PAGE_OVERVIEW
    )
    with pytest.raises(grpc.RpcError) as raised:
        stub.GetPreferences(identity_pb2.GetPreferencesRequest(session_token="never-issued"))
    assert raised.value.code() == grpc.StatusCode.UNAUTHENTICATED


def test_sign_out_everywhere_revokes_every_session_of_the_person(stub: Stub, demo_pool: ConnectionPool) -> None:
    mine = [_session(demo_pool, "student001") for _ in range(3)]
    someone_else = _session(demo_pool, "student002")

    response = stub.SignOutEverywhere(identity_pb2.SignOutEverywhereRequest(session_token=mine[0]))

    assert response.revoked == 3
    for token in mine:
        with pytest.raises(grpc.RpcError) as raised:
            stub.GetSession(identity_pb2.GetSessionRequest(session_token=token))
        assert raised.value.code() == grpc.StatusCode.NOT_FOUND
    assert stub.GetSession(identity_pb2.GetSessionRequest(session_token=someone_else)).person.person_id


def _view(stub: Stub, assertion: str, student: uuid.UUID) -> identity_pb2.CheckAccessResponse:
    response: identity_pb2.CheckAccessResponse = stub.CheckAccess(
        identity_pb2.CheckAccessRequest(
            actor_assertion=assertion,
            action="student.view",
            resource=identity_pb2.Resource(kind="student", id=str(student)),
            data_purpose=ES,
        )
    )
    return response


def test_break_glass_grants_short_audited_access_listed_for_the_dpo(stub: Stub, demo_pool: ConnectionPool) -> None:
    tutor = _assertion(stub, demo_pool, "tutor1")
    student = _tutees(demo_pool, "tutor2")[0]
    assert not _view(stub, tutor, student).allowed
    reason = "Student reported in crisis at the library desk; tutor unreachable."

    with pytest.raises(grpc.RpcError) as short:
        stub.RequestBreakGlass(
            identity_pb2.RequestBreakGlassRequest(actor_assertion=tutor, student=str(student), reason="because")
        )
    assert short.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    grant = stub.RequestBreakGlass(
        identity_pb2.RequestBreakGlassRequest(
            actor_assertion=tutor, student=_pseudonym(demo_pool, student), reason=reason
        )
    ).grant

    assert grant.student_person_id == str(student)
    lifetime = grant.expires_at.ToDatetime() - grant.granted_at.ToDatetime()
    assert lifetime == timedelta(minutes=60)
    allowed = _view(stub, tutor, student)
    assert (allowed.allowed, allowed.rule) == (True, "student.view.break_glass")
    granted = [e for e in _audit(demo_pool) if e.action == "break_glass.grant"]
    assert [(e.subject.id, e.purpose, e.outcome) for e in granted] == [
        (str(student), reason, events_pb2.OUTCOME_ALLOWED)
    ]

    dpo = _assertion(stub, demo_pool, "dpo1")
    listed = stub.ListBreakGlassGrants(identity_pb2.ListBreakGlassGrantsRequest(actor_assertion=dpo))
    assert [(g.grant_id, g.reason) for g in listed.grants] == [(grant.grant_id, reason)]
    with pytest.raises(grpc.RpcError) as refused:
        stub.ListBreakGlassGrants(identity_pb2.ListBreakGlassGrantsRequest(actor_assertion=tutor))
    assert refused.value.code() == grpc.StatusCode.PERMISSION_DENIED
    assert [e.outcome for e in _audit(demo_pool) if e.action == "break_glass.review"] == [
        events_pb2.OUTCOME_ALLOWED,
        events_pb2.OUTCOME_REFUSED,
    ]
    later = Timestamp()
    later.FromDatetime(datetime.now(UTC) + timedelta(minutes=1))
    assert not stub.ListBreakGlassGrants(
        identity_pb2.ListBreakGlassGrantsRequest(actor_assertion=dpo, since=later)
    ).grants

    # Expired: no longer honoured. The change is made by another connection, as by another process, so identity
    # honours it once the change's notification reaches it (facts_cache), not necessarily on the very next call.
    with demo_pool.connection() as conn:
        conn.execute(
            "UPDATE break_glass_grants SET granted_at = granted_at - interval '2 hours',"
            " expires_at = expires_at - interval '2 hours'"
        )
    deadline = time.monotonic() + 5
    while _view(stub, tutor, student).allowed:
        assert time.monotonic() < deadline, "an expired grant is still honoured"
        time.sleep(0.02)


def test_students_get_no_break_glass(stub: Stub, demo_pool: ConnectionPool) -> None:
    with pytest.raises(grpc.RpcError) as raised:
        stub.RequestBreakGlass(
            identity_pb2.RequestBreakGlassRequest(
                actor_assertion=_assertion(stub, demo_pool, "student001"),
                student=str(demo.demo_id("person", "student002")),
                reason="I would like to see my friend's attendance please",
            )
        )
    assert raised.value.code() == grpc.StatusCode.PERMISSION_DENIED
    assert [(e.action, e.outcome) for e in _audit(demo_pool)] == [("break_glass.grant", events_pb2.OUTCOME_REFUSED)]


def test_module_management_follows_the_policy(stub: Stub, demo_pool: ConnectionPool) -> None:
    lead, admin, other_admin = (_assertion(stub, demo_pool, n) for n in ("lecturer1", "schooladmin1", "schooladmin2"))
    comp = str(demo.demo_id("school", "COMP"))

    updated = stub.UpdateModule(
        identity_pb2.UpdateModuleRequest(actor_assertion=lead, module_id=CS101_MODULE, title="Programming I")
    )
    assert updated.module.title == "Programming I"
    for assertion, request in [
        (lead, identity_pb2.UpdateModuleRequest(module_id=MA101_MODULE, title="Calculus I")),
        (other_admin, identity_pb2.UpdateModuleRequest(module_id=CS101_MODULE, title="Programming II")),
    ]:
        request.actor_assertion = assertion
        with pytest.raises(grpc.RpcError) as raised:
            stub.UpdateModule(request)
        assert raised.value.code() == grpc.StatusCode.PERMISSION_DENIED
    with pytest.raises(grpc.RpcError) as raised:
        stub.CreateModule(
            identity_pb2.CreateModuleRequest(actor_assertion=lead, school_id=comp, code="CS999", title="New")
        )
    assert raised.value.code() == grpc.StatusCode.PERMISSION_DENIED
    created = stub.CreateModule(
        identity_pb2.CreateModuleRequest(actor_assertion=admin, school_id=comp, code="CS999", title="New")
    ).module
    with pytest.raises(grpc.RpcError) as taken:
        stub.CreateModule(
            identity_pb2.CreateModuleRequest(actor_assertion=admin, school_id=comp, code="CS999", title="Again")
        )
    assert taken.value.code() == grpc.StatusCode.ALREADY_EXISTS
    with pytest.raises(grpc.RpcError) as raised:
        stub.DeleteModule(identity_pb2.ModuleActionRequest(actor_assertion=lead, module_id=CS101_MODULE))
    assert raised.value.code() == grpc.StatusCode.PERMISSION_DENIED
    deleted = stub.DeleteModule(identity_pb2.ModuleActionRequest(actor_assertion=admin, module_id=created.module_id))
    assert deleted.module.deleted
    restored = stub.RestoreModule(identity_pb2.ModuleActionRequest(actor_assertion=admin, module_id=created.module_id))
    assert not restored.module.deleted

    assert [(e.action, e.outcome) for e in _audit(demo_pool)] == [
        ("module.update", events_pb2.OUTCOME_ALLOWED),
        ("module.update", events_pb2.OUTCOME_REFUSED),
        ("module.update", events_pb2.OUTCOME_REFUSED),
        ("module.create", events_pb2.OUTCOME_REFUSED),
        ("module.create", events_pb2.OUTCOME_ALLOWED),
        ("module.create", events_pb2.OUTCOME_ALLOWED),
        ("module.delete", events_pb2.OUTCOME_REFUSED),
        ("module.delete", events_pb2.OUTCOME_ALLOWED),
        ("module.restore", events_pb2.OUTCOME_ALLOWED),
    ]
    with demo_pool.connection() as conn:
        row = conn.execute("SELECT title FROM modules WHERE id = %s", (MA101_MODULE,)).fetchone()
    assert row == ("Calculus",)


def test_contact_details_are_audited_and_only_for_the_right_kind(stub: Stub, demo_pool: ConnectionPool) -> None:
    student = demo.demo_id("person", "student001")
    details = stub.GetContactDetails(
        identity_pb2.GetContactDetailsRequest(
            pseudonym=_pseudonym(demo_pool, student),
            purpose="supportive_enquiry",
            on_behalf_of_person_id=str(demo.demo_id("person", "tutor1")),
        )
    )
    assert details.email.endswith("@demo.tend.invalid")
    with pytest.raises(grpc.RpcError) as raised:
        stub.GetContactDetails(identity_pb2.GetContactDetailsRequest(person_id=str(student), purpose="digest"))
    assert raised.value.code() == grpc.StatusCode.NOT_FOUND
    audited = _audit(demo_pool)
    assert [(e.actor.kind, e.subject.id, e.outcome) for e in audited] == [
        (events_pb2.ACTOR_KIND_PERSON, str(student), events_pb2.OUTCOME_ALLOWED),
        (events_pb2.ACTOR_KIND_SERVICE, str(student), events_pb2.OUTCOME_REFUSED),
    ]
    with demo_pool.connection() as conn:
        assert key_store.person_of_pseudonym(conn, "p_unknown") is None


def test_the_names_other_services_rely_on(stub: Stub, demo_pool: ConnectionPool) -> None:
    """audit asks "audit.read_all" on the whole log ("*") and "audit.read" on a person; notify asks "enquiry.send"
    on a student named by pseudonym; checkin asks "attendance.correct" and "teaching_session.create" on a run."""
    dpo, tutor, lecturer = (_assertion(stub, demo_pool, name) for name in ("dpo1", "tutor1", "lecturer1"))
    student001 = demo.demo_id("person", "student001")
    own_tutee, other_tutee = _tutees(demo_pool, "tutor1")[0], _tutees(demo_pool, "tutor2")[0]

    def decide(assertion: str, action: str, kind: str, resource_id: str) -> bool:
        request = identity_pb2.CheckAccessRequest(
            actor_assertion=assertion, action=action, resource=identity_pb2.Resource(kind=kind, id=resource_id)
        )
        return bool(stub.CheckAccess(request).allowed)

    assert decide(dpo, "audit.read_all", "audit_log", "*")
    assert not decide(tutor, "audit.read_all", "audit_log", "*")
    assert decide(dpo, "audit.read", "person", str(student001))
    assert decide(_assertion(stub, demo_pool, "student001"), "audit.read", "person", str(student001))
    assert not decide(tutor, "audit.read", "person", str(student001))
    assert decide(tutor, "enquiry.send", "student", _pseudonym(demo_pool, own_tutee))
    assert not decide(tutor, "enquiry.send", "student", _pseudonym(demo_pool, other_tutee))
    assert not decide(dpo, "enquiry.send", "student", _pseudonym(demo_pool, own_tutee))
    for action in ("attendance.correct", "teaching_session.create"):
        assert decide(lecturer, action, "module_run", CS101)
        assert not decide(tutor, action, "module_run", CS101)


def test_an_assertion_signed_before_a_key_rotation_still_decides(
    stub: Stub, demo_pool: ConnectionPool, keyring: Keyring
) -> None:
    before = _assertion(stub, demo_pool, "lecturer1")
    keyring.rotate()
    after = _assertion(stub, demo_pool, "lecturer1")

    for assertion in (before, after):
        response = stub.CheckAccess(
            identity_pb2.CheckAccessRequest(
                actor_assertion=assertion,
                action="teaching_session.open",
                resource=identity_pb2.Resource(kind="module_run", id=CS101),
            )
        )
        assert response.allowed
    assert before.split(".")[0] != after.split(".")[0]  # a different key id in the header
