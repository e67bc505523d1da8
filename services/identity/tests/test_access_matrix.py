"""The access matrix, generated from the policy: every relationship against every action, on a resource inside and
outside its relationship, and every list purpose with its level of detail (aggregates suppressed below the
minimum cohort). Each cell is asked of identity over real gRPC, against a real database holding an organisation
where one member of staff holds each relationship and nothing else; each answer must be the one the policy (and
docs/access-policy.md) prints, and each must leave an audit record."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import grpc
import pytest
from psycopg_pool import ConnectionPool
from tend.identity.v1 import identity_pb2, identity_pb2_grpc

from services.identity.tests.kek import TEST_WRAPPING
from services.identity.tests.org_graph import Grant, OrgGraph
from tend_common.db import open_pool
from tend_common.grpc_server import start_grpc_server
from tend_identity import policy, policy_docs
from tend_identity.assertions import issue_assertion
from tend_identity.grpc_service import SERVICE_NAME, IdentityServicer, register
from tend_identity.model import Person, PersonKind
from tend_identity.policy import Purpose
from tend_identity.settings import Settings
from tend_identity.signing import Keyring
from tend_testing.plugin import DatabaseFactory

ROOT = Path(__file__).resolve().parents[3]
PURPOSES = {
    Purpose.ATTENDANCE_CORRECTION: identity_pb2.PURPOSE_ATTENDANCE_CORRECTION,
    Purpose.ENGAGEMENT_SUPPORT: identity_pb2.PURPOSE_ENGAGEMENT_SUPPORT,
    Purpose.VISA_COMPLIANCE: identity_pb2.PURPOSE_VISA_COMPLIANCE,
    Purpose.COHORT_PATTERNS: identity_pb2.PURPOSE_COHORT_PATTERNS,
}
INSTITUTION_ROLES = (
    "executive_team", "project_staff", "student_services", "support_and_wellbeing", "visa_immigration",
    "data_protection_officer", "system_administrator",
)  # fmt: skip


@dataclass(frozen=True)
class MatrixUniversity:
    graph: OrgGraph
    holders: dict[str, uuid.UUID]
    # resource kind -> (inside id, outside id)
    resources: dict[str, tuple[str, str]]
    small_run: uuid.UUID
    inside_student: uuid.UUID
    outside_student: uuid.UUID


def _matrix_university(now: datetime) -> MatrixUniversity:
    """Faculty 1 > school 1 > programme 1, runs R1 (12 students) and R1b (3); faculty 2 > school 2 > programme 2,
    run R2. The inside student is on programme 1, level 1, R1 and R1b, with a sponsored visa; the outside student
    is on programme 2, level 2, R2, without one."""
    graph = OrgGraph()
    f1, f2 = graph.faculty(), graph.faculty()
    s1, s2 = graph.school(f1), graph.school(f2)
    p1, p2 = graph.programme(s1), graph.programme(s2)
    r1, r1b, r2 = graph.module_run(s1), graph.module_run(s1), graph.module_run(s2)
    inside = graph.student(p1, 1, sponsored=True, runs=(r1, r1b))
    outside = graph.student(p2, 2, runs=(r2,))
    for _ in range(11):
        graph.student(p1, 1, runs=(r1,))
    for _ in range(2):
        graph.student(p1, 1, runs=(r1b,))

    holders: dict[str, uuid.UUID] = {policy.SELF: inside}
    for relationship in policy.RELATIONSHIPS:
        if relationship.name != policy.SELF:
            holders[relationship.name] = graph.member_of_staff()
    graph.tutors.append((holders["personal_tutor"], inside))
    graph.level_tutors.append((holders["level_tutor"], p1, 1))
    graph.teaching += [(holders["teaches"], "teaches", r1), (holders["leads_module"], "leads", r1)]
    graph.roles += [
        (holders["programme_lead"], "programme_lead", "programme", p1),
        (holders["director_of_school"], "director_of_school", "school", s1),
        (holders["school_administrator"], "school_administrator", "school", s1),
        (holders["faculty_pro_vice_chancellor"], "faculty_pro_vice_chancellor", "faculty", f1),
        (holders["associate_dean_education"], "associate_dean_education", "faculty", f1),
        *((holders[role], role, "institution", None) for role in INSTITUTION_ROLES),
    ]
    graph.grants.append(
        Grant(holders[policy.BREAK_GLASS], inside, now - timedelta(minutes=5), now + timedelta(hours=1))
    )
    return MatrixUniversity(
        graph=graph,
        holders=holders,
        resources={
            "module_run": (str(r1), str(r2)),
            "module": (str(graph.runs[r1]), str(graph.runs[r2])),
            "school": (str(s1), str(s2)),
            "person": (str(inside), str(outside)),
            "student": (str(inside), str(outside)),
            "audit_log": ("all", "all"),
        },
        small_run=r1b,
        inside_student=inside,
        outside_student=outside,
    )


@pytest.fixture(scope="module")
def university() -> MatrixUniversity:
    return _matrix_university(datetime.now(UTC))


@pytest.fixture(scope="module")
def matrix_dsn(module_database_factory: DatabaseFactory) -> str:
    return module_database_factory("tend_identity.migrations")


@pytest.fixture(scope="module")
def matrix_pool(matrix_dsn: str, university: MatrixUniversity) -> Iterator[ConnectionPool]:
    pool = open_pool(matrix_dsn, max_size=4, name="identity-matrix")
    with pool.connection() as conn:
        university.graph.load(conn)
    yield pool
    pool.close()


@pytest.fixture(scope="module")
def matrix_keyring(matrix_pool: ConnectionPool) -> Keyring:
    return Keyring(matrix_pool, retired_kept=timedelta(hours=1), wrapping=TEST_WRAPPING)


@pytest.fixture(scope="module")
def matrix_stub(
    matrix_dsn: str, matrix_pool: ConnectionPool, matrix_keyring: Keyring
) -> Iterator[identity_pb2_grpc.IdentityServiceStub]:
    settings = Settings(database_url=matrix_dsn, grpc_port=0, metrics_port=0)
    servicer = IdentityServicer(matrix_pool, matrix_keyring, settings)
    server = start_grpc_server(register(servicer), [SERVICE_NAME], port=0, max_workers=4)
    with grpc.insecure_channel(f"127.0.0.1:{server.port}") as channel:
        yield identity_pb2_grpc.IdentityServiceStub(channel)
    server.stop(grace_seconds=1.0)
    servicer.close()


def _assertion(keyring: Keyring, university: MatrixUniversity, relationship: str) -> str:
    kind = PersonKind.STUDENT if relationship == policy.SELF else PersonKind.STAFF
    person = Person(university.holders[relationship], kind, "someone", ())
    return issue_assertion(keyring, person, "portal", timedelta(minutes=10), datetime.now(UTC))


def _outbox_size(pool: ConnectionPool) -> int:
    with pool.connection() as conn:
        row = conn.execute("SELECT count(*) FROM outbox").fetchone()
    return int(row[0]) if row else 0


def _ask(
    stub: identity_pb2_grpc.IdentityServiceStub,
    university: MatrixUniversity,
    assertion: str,
    column: policy_docs.Column,
) -> str:
    """The service's answer to one cell, in the matrix's words."""
    if column.kind in ("action", "student_view"):
        inside_id, outside_id = university.resources[column.resource_kind]
        response = stub.CheckAccess(
            identity_pb2.CheckAccessRequest(
                actor_assertion=assertion,
                action=column.action,
                resource=identity_pb2.Resource(
                    kind=column.resource_kind, id=inside_id if column.inside else outside_id
                ),
                data_purpose=PURPOSES[column.purpose] if column.purpose else identity_pb2.PURPOSE_UNSPECIFIED,
            )
        )
        return policy_docs.ALLOWED if response.allowed else policy_docs.DENIED
    assert column.purpose is not None
    # Attendance correction is always for one module run: the inside student's R1.
    run = university.resources["module_run"][0] if column.purpose is Purpose.ATTENDANCE_CORRECTION else ""
    listed = stub.ListVisibleStudents(
        identity_pb2.ListVisibleStudentsRequest(
            actor_assertion=assertion,
            purpose=PURPOSES[column.purpose],
            module_run_id=str(university.small_run) if column.kind == "small_cohort" else run,
        )
    )
    if listed.detail == identity_pb2.DETAIL_LEVEL_INDIVIDUAL:
        return policy_docs.INDIVIDUAL
    if listed.detail == identity_pb2.DETAIL_LEVEL_AGGREGATE:
        assert not listed.students
        if listed.suppressed:
            assert listed.cohort_size == 0
            return policy_docs.SUPPRESSED
        assert listed.cohort_size >= listed.minimum_cohort_size == 10
        return policy_docs.AGGREGATE
    assert listed.detail == identity_pb2.DETAIL_LEVEL_NONE
    assert not listed.students
    return policy_docs.NONE


@pytest.mark.parametrize("relationship", [r.name for r in policy.RELATIONSHIPS])
def test_every_cell_of_the_matrix(
    relationship: str,
    university: MatrixUniversity,
    matrix_stub: identity_pb2_grpc.IdentityServiceStub,
    matrix_keyring: Keyring,
    matrix_pool: ConnectionPool,
) -> None:
    assertion = _assertion(matrix_keyring, university, relationship)
    wrong: list[str] = []
    for row, column, expected in policy_docs.matrix():
        if row.name != relationship or expected == policy_docs.NOT_APPLICABLE:
            continue
        before = _outbox_size(matrix_pool)
        answer = _ask(matrix_stub, university, assertion, column)
        if answer != expected:
            wrong.append(f"{column.key}: expected {expected}, got {answer}")
        assert _outbox_size(matrix_pool) > before, f"{column.key} left no audit record"
    assert wrong == []


@pytest.mark.parametrize("purpose", list(Purpose))
def test_individual_lists_hold_the_inside_student_and_not_the_outside_one(
    purpose: Purpose,
    university: MatrixUniversity,
    matrix_stub: identity_pb2_grpc.IdentityServiceStub,
    matrix_keyring: Keyring,
) -> None:
    for relationship in policy.RELATIONSHIPS:
        if policy.detail_for(relationship.name, purpose) is not policy.Detail.INDIVIDUAL:
            continue
        listed = matrix_stub.ListVisibleStudents(
            identity_pb2.ListVisibleStudentsRequest(
                actor_assertion=_assertion(matrix_keyring, university, relationship.name),
                purpose=PURPOSES[purpose],
                module_run_id=university.resources["module_run"][0] if purpose is Purpose.ATTENDANCE_CORRECTION else "",
            )
        )
        resolved = matrix_stub.ResolvePseudonyms(
            identity_pb2.ResolvePseudonymsRequest(
                actor_assertion=_assertion(matrix_keyring, university, relationship.name),
                pseudonyms=[student.pseudonym for student in listed.students],
                purpose=PURPOSES[purpose],
            )
        )
        names = {student.display_name for student in listed.students}
        assert f"Person {university.inside_student.hex[:12]}" in names, relationship.name
        outside_listed = f"Person {university.outside_student.hex[:12]}" in names
        assert outside_listed is relationship.reaches_every_student, relationship.name
        assert [s.pseudonym for s in resolved.students] == [s.pseudonym for s in listed.students]
        # The visa flag is shown for visa compliance only (where every listed student holds one).
        assert {s.sponsored_visa for s in listed.students} == {purpose is Purpose.VISA_COMPLIANCE}


def test_the_docs_print_the_policy_as_it_is() -> None:
    """docs/access-policy.md is regenerated with `tend-identity policy-docs --output docs/access-policy.md`."""
    assert (ROOT / "docs" / "access-policy.md").read_text(encoding="utf-8") == policy_docs.render()


def test_the_matrix_covers_every_relationship_and_action() -> None:
    cells = list(policy_docs.matrix())
    assert {row.name for row, _column, _expected in cells} == policy.RELATIONSHIP_NAMES
    assert {column.action for _row, column, _e in cells if column.kind == "action"} == {
        r.action for r in policy.ACTIONS
    }
    # Deny by default shows: outside its relationship, nobody is allowed anything.
    assert not [c for r, c, e in cells if not c.inside and e == policy_docs.ALLOWED]
