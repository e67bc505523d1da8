"""FindPerson (the data protection officer's look-up of a student number, staff number or staff user name) and
ListModules (the modules a person may manage), over a real gRPC server and the demo university. A look-up is
recorded before it is answered, allowed or refused, and never records the number typed; the module list offers
exactly what CheckAccess allows."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import grpc
import pytest
from psycopg_pool import ConnectionPool
from tend.audit.v1 import events_pb2
from tend.identity.v1 import identity_pb2, identity_pb2_grpc

from tend_identity import demo, sessions

Stub = identity_pb2_grpc.IdentityServiceStub
ALLOWED, REFUSED = events_pb2.OUTCOME_ALLOWED, events_pb2.OUTCOME_REFUSED
STUDENT = demo.demo_id("person", "student001")
MODULE_ACTIONS = ("module.update", "module.delete", "module.restore")


def _assertion(stub: Stub, pool: ConnectionPool, username: str) -> str:
    with pool.connection() as conn:
        token = sessions.open_session(conn, demo.demo_id("person", username), datetime.now(UTC) + timedelta(hours=1))
    response = stub.GetSession(identity_pb2.GetSessionRequest(session_token=token, audiences=["portal"]))
    return str(response.assertions["portal"])


def _student_number(pool: ConnectionPool, person_id: uuid.UUID) -> str:
    with pool.connection() as conn:
        row = conn.execute("SELECT student_number FROM people WHERE id = %s", (person_id,)).fetchone()
    assert row is not None
    return str(row[0])


def _staff_number(pool: ConnectionPool, username: str) -> str:
    with pool.connection() as conn:
        row = conn.execute("SELECT staff_number FROM people WHERE username = %s", (username,)).fetchone()
    assert row is not None
    assert row[0]
    return str(row[0])


def _set_staff_number(pool: ConnectionPool, username: str, number: str) -> None:
    with pool.connection() as conn:
        conn.execute("UPDATE people SET staff_number = %s WHERE username = %s", (number, username))


def _audit(pool: ConnectionPool) -> list[events_pb2.AuditEvent]:
    with pool.connection() as conn:
        rows = conn.execute("SELECT body FROM outbox ORDER BY id").fetchall()
    return [events_pb2.AuditEvent.FromString(bytes(row[0])) for row in rows]


def _find(stub: Stub, assertion: str, identifier: str) -> identity_pb2.FindPersonResponse:
    found: identity_pb2.FindPersonResponse = stub.FindPerson(
        identity_pb2.FindPersonRequest(actor_assertion=assertion, identifier=identifier)
    )
    return found


def _refused(stub: Stub, assertion: str, identifier: str) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as raised:
        _find(stub, assertion, identifier)
    return raised.value


def test_the_dpo_finds_a_student_and_a_member_of_staff_and_each_look_up_is_recorded(
    stub: Stub, demo_pool: ConnectionPool
) -> None:
    dpo = _assertion(stub, demo_pool, "dpo1")
    number = _student_number(demo_pool, STUDENT)

    student = _find(stub, dpo, f"  {number} ")
    staff = _find(stub, dpo, "lecturer1")  # by user name, for staff imported without a staff number

    assert student.person_id == str(STUDENT)
    assert student.display_name
    assert staff.person_id == str(demo.demo_id("person", "lecturer1"))
    audited = _audit(demo_pool)
    assert [(e.action, e.subject.kind, e.subject.id, e.outcome, e.actor.id) for e in audited] == [
        ("person.find", "person", str(STUDENT), ALLOWED, str(demo.demo_id("person", "dpo1"))),
        ("person.find", "person", staff.person_id, ALLOWED, str(demo.demo_id("person", "dpo1"))),
    ]
    assert all(number not in e.SerializeToString().decode("utf-8", "replace") for e in audited)


def test_the_dpo_finds_a_member_of_staff_by_staff_number_and_the_look_up_is_recorded(
    stub: Stub, demo_pool: ConnectionPool
) -> None:
    dpo = _assertion(stub, demo_pool, "dpo1")
    number = _staff_number(demo_pool, "lecturer2")

    found = _find(stub, dpo, f" {number}  ")

    assert found.person_id == str(demo.demo_id("person", "lecturer2"))
    assert found.display_name
    audited = _audit(demo_pool)
    assert [(e.action, e.subject.kind, e.subject.id, e.outcome) for e in audited] == [
        ("person.find", "person", found.person_id, ALLOWED)
    ]
    assert number not in audited[0].SerializeToString().decode("utf-8", "replace")


@pytest.mark.parametrize("username", ["lecturer1", "director1", "sysadmin1", "student001"])
def test_anyone_else_is_refused_a_staff_number_alike_known_or_unknown(
    stub: Stub, demo_pool: ConnectionPool, username: str
) -> None:
    asking = _assertion(stub, demo_pool, username)

    known = _refused(stub, asking, _staff_number(demo_pool, "lecturer2"))
    unknown = _refused(stub, asking, "SN-NOBODY")

    assert known.code() == unknown.code() == grpc.StatusCode.PERMISSION_DENIED
    assert known.details() == unknown.details()
    assert [(e.subject.kind, e.subject.id, e.outcome) for e in _audit(demo_pool)] == [
        ("person", str(demo.demo_id("person", "lecturer2")), REFUSED),
        ("person_reference", "unknown", REFUSED),
    ]


def test_a_member_of_staff_finds_themself_by_staff_number(stub: Stub, demo_pool: ConnectionPool) -> None:
    lecturer = _assertion(stub, demo_pool, "lecturer2")

    found = _find(stub, lecturer, _staff_number(demo_pool, "lecturer2"))

    assert found.person_id == str(demo.demo_id("person", "lecturer2"))


def test_a_student_number_wins_over_a_staff_number_and_a_staff_number_over_a_user_name(
    stub: Stub, demo_pool: ConnectionPool
) -> None:
    dpo = _assertion(stub, demo_pool, "dpo1")
    student_number = _student_number(demo_pool, STUDENT)
    # Numbering schemes that overlap: lecturer2's staff number is a student's number, tutor1's is a user name.
    _set_staff_number(demo_pool, "lecturer2", student_number)
    _set_staff_number(demo_pool, "tutor1", "lecturer1")

    assert _find(stub, dpo, student_number).person_id == str(STUDENT)
    assert _find(stub, dpo, "lecturer1").person_id == str(demo.demo_id("person", "tutor1"))
    assert _find(stub, dpo, "lecturer2").person_id == str(demo.demo_id("person", "lecturer2"))


def test_a_lecturer_is_refused_alike_for_a_known_and_an_unknown_number_and_both_refusals_are_recorded(
    stub: Stub, demo_pool: ConnectionPool
) -> None:
    lecturer = _assertion(stub, demo_pool, "lecturer1")

    known = _refused(stub, lecturer, _student_number(demo_pool, STUDENT))
    unknown = _refused(stub, lecturer, "CN-NOBODY")

    assert known.code() == unknown.code() == grpc.StatusCode.PERMISSION_DENIED
    assert known.details() == unknown.details()
    assert [(e.action, e.subject.kind, e.subject.id, e.outcome) for e in _audit(demo_pool)] == [
        ("person.find", "person", str(STUDENT), REFUSED),
        ("person.find", "person_reference", "unknown", REFUSED),
    ]


def test_an_unknown_number_is_not_found_for_the_dpo(stub: Stub, demo_pool: ConnectionPool) -> None:
    missing = _refused(stub, _assertion(stub, demo_pool, "dpo1"), "CN-NOBODY")

    assert missing.code() == grpc.StatusCode.NOT_FOUND
    assert [(e.subject.kind, e.outcome) for e in _audit(demo_pool)] == [("person_reference", ALLOWED)]


def test_a_student_finds_only_themself(stub: Stub, demo_pool: ConnectionPool) -> None:
    student = _assertion(stub, demo_pool, "student001")
    other = demo.demo_id("person", "student002")

    assert _find(stub, student, _student_number(demo_pool, STUDENT)).person_id == str(STUDENT)
    assert _refused(stub, student, _student_number(demo_pool, other)).code() == grpc.StatusCode.PERMISSION_DENIED


def test_a_look_up_is_not_answered_when_its_record_cannot_be_made(stub: Stub, demo_pool: ConnectionPool) -> None:
    dpo = _assertion(stub, demo_pool, "dpo1")
    with demo_pool.connection() as conn:
        conn.execute("ALTER TABLE outbox ADD CONSTRAINT no_more_records CHECK (false) NOT VALID")

    failed = _refused(stub, dpo, _student_number(demo_pool, STUDENT))

    assert failed.code() == grpc.StatusCode.INTERNAL
    assert failed.details() == "internal error"


@pytest.mark.parametrize("identifier", ["", "   ", "x" * 321, "CN\x00"])
def test_a_look_up_needs_an_identifier(stub: Stub, demo_pool: ConnectionPool, identifier: str) -> None:
    assert _refused(stub, _assertion(stub, demo_pool, "dpo1"), identifier).code() == grpc.StatusCode.INVALID_ARGUMENT
    assert _audit(demo_pool) == []


def _modules(stub: Stub, assertion: str) -> identity_pb2.ListModulesResponse:
    listed: identity_pb2.ListModulesResponse = stub.ListModules(
        identity_pb2.ListModulesRequest(actor_assertion=assertion)
    )
    return listed


def _listed(response: identity_pb2.ListModulesResponse) -> dict[str, tuple[bool, tuple[str, ...]]]:
    return {m.module.code: (m.module.deleted, tuple(m.allowed_actions)) for m in response.modules}


def test_a_school_administrator_sees_the_schools_modules_withdrawn_ones_too(
    stub: Stub, demo_pool: ConnectionPool
) -> None:
    admin = _assertion(stub, demo_pool, "schooladmin1")
    cs201 = str(demo.demo_id("module", "CS201"))
    stub.DeleteModule(identity_pb2.ModuleActionRequest(actor_assertion=admin, module_id=cs201))

    listed = _modules(stub, admin)

    live = (False, ("module.update", "module.delete"))
    assert _listed(listed) == {
        "CS101": live,
        "CS102": live,
        "CS201": (True, ("module.update", "module.restore")),
        "SE101": live,
    }
    assert {m.school.code for m in listed.modules} == {"COMP"}
    assert [s.code for s in listed.schools_for_new_modules] == ["COMP"]
    cs101 = next(m for m in listed.modules if m.module.code == "CS101")
    assert [(r.module_run_id, r.term) for r in cs101.runs] == [
        (str(demo.demo_id("module_run", "CS101")), "2026/27 autumn")
    ]


def test_a_module_lead_sees_the_modules_they_lead_until_withdrawn(stub: Stub, demo_pool: ConnectionPool) -> None:
    lead = _assertion(stub, demo_pool, "lecturer1")
    listed = _modules(stub, lead)
    assert _listed(listed) == {"CS101": (False, ("module.update",))}
    assert list(listed.schools_for_new_modules) == []

    admin = _assertion(stub, demo_pool, "schooladmin1")
    cs101 = str(demo.demo_id("module", "CS101"))
    stub.DeleteModule(identity_pb2.ModuleActionRequest(actor_assertion=admin, module_id=cs101))

    assert _listed(_modules(stub, lead)) == {}


@pytest.mark.parametrize("username", ["tutor1", "director1", "dpo1", "student001"])
def test_people_who_manage_no_module_get_none(stub: Stub, demo_pool: ConnectionPool, username: str) -> None:
    listed = _modules(stub, _assertion(stub, demo_pool, username))

    assert list(listed.modules) == []
    assert list(listed.schools_for_new_modules) == []


@pytest.mark.parametrize("username", ["schooladmin1", "schooladmin2", "lecturer1", "lecturer2", "tutor2"])
def test_the_list_offers_exactly_what_access_decisions_allow(
    stub: Stub, demo_pool: ConnectionPool, username: str
) -> None:
    assertion = _assertion(stub, demo_pool, username)
    listed = {m.module.module_id: set(m.allowed_actions) for m in _modules(stub, assertion).modules}
    with demo_pool.connection() as conn:
        every_module = [str(row[0]) for row in conn.execute("SELECT id FROM modules").fetchall()]

    for module_id in every_module:
        for action in ("module.update", "module.delete"):
            decided = stub.CheckAccess(
                identity_pb2.CheckAccessRequest(
                    actor_assertion=assertion,
                    action=action,
                    resource=identity_pb2.Resource(kind="module", id=module_id),
                )
            ).allowed
            assert decided == (action in listed.get(module_id, set())), (username, module_id, action)
