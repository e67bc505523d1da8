"""A property over random organisation graphs: nobody is ever granted an individual student without a relationship
path to them or an active break-glass grant, whatever the graph, and a student is only ever granted themself."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from psycopg_pool import ConnectionPool

from services.identity.tests.kek import TEST_WRAPPING
from services.identity.tests.org_graph import Grant, OrgGraph
from tend_identity import decisions, disclosure, policy
from tend_identity.model import Actor, PersonKind, Resource
from tend_identity.policy import Detail, Purpose
from tend_identity.store import relations

NOW = datetime(2026, 11, 2, 10, 0, tzinfo=UTC)
SCOPED_ROLES = [*policy.ROLE_SCOPES.items(), ("lecturer", "school"), ("personal_tutor", "school")]


@st.composite
def org_graphs(draw: st.DrawFn) -> OrgGraph:
    graph = OrgGraph()
    faculties = [graph.faculty() for _ in range(draw(st.integers(1, 3)))]
    schools = [graph.school(draw(st.sampled_from(faculties))) for _ in range(draw(st.integers(1, 4)))]
    programmes = [graph.programme(draw(st.sampled_from(schools))) for _ in range(draw(st.integers(1, 3)))]
    runs = [graph.module_run(draw(st.sampled_from(schools))) for _ in range(draw(st.integers(1, 4)))]
    students = []
    for _ in range(draw(st.integers(1, 7))):
        enrolled = draw(st.lists(st.sampled_from(runs), unique=True, max_size=3))
        student = graph.student(
            draw(st.sampled_from(programmes)), draw(st.integers(1, 3)), draw(st.booleans()), tuple(enrolled)
        )
        graph.students[student].withdrawn_from = (
            draw(st.lists(st.sampled_from(enrolled), unique=True)) if enrolled else []
        )
        students.append(student)
    staff = [graph.member_of_staff() for _ in range(draw(st.integers(1, 5)))]
    scopes = {"faculty": faculties, "school": schools, "programme": programmes}
    for person in staff:
        for _ in range(draw(st.integers(0, 4))):
            kind = draw(st.sampled_from(["teaches", "leads", "tutor", "level", "role", "role", "role", "grant"]))
            if kind in ("teaches", "leads"):
                graph.teaching.append((person, kind, draw(st.sampled_from(runs))))
            elif kind == "tutor":
                graph.tutors.append((person, draw(st.sampled_from(students))))
            elif kind == "level":
                graph.level_tutors.append((person, draw(st.sampled_from(programmes)), draw(st.integers(1, 3))))
            elif kind == "role":
                role, scope_kind = draw(st.sampled_from(SCOPED_ROLES))
                scope = None if scope_kind == "institution" else draw(st.sampled_from(scopes[scope_kind]))
                graph.roles.append((person, role, scope_kind, scope))
            else:
                start = NOW + timedelta(minutes=draw(st.integers(-180, 30)))
                length = timedelta(minutes=draw(st.integers(1, 120)))
                graph.grants.append(Grant(person, draw(st.sampled_from(students)), start, start + length))
    graph.tutors = list(dict.fromkeys(graph.tutors))
    graph.level_tutors = list(dict.fromkeys(graph.level_tutors))
    return graph


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(graph=org_graphs(), purpose=st.sampled_from(list(Purpose)))
def test_nobody_sees_an_individual_student_without_a_path(
    pool: ConnectionPool, graph: OrgGraph, purpose: Purpose
) -> None:
    """Checked at two levels: every relationship the data access finds (whatever detail the policy gives it) lies on
    a path in the graph, and the decisions (student.view, the list) for a purpose grant no more than that."""
    staff_relationships = policy.RELATIONSHIP_NAMES - {policy.SELF}
    with pool.connection() as conn, conn.transaction(force_rollback=True):
        graph.load(conn)
        for staff in graph.staff:
            actor = Actor(staff, PersonKind.STAFF)
            in_scope = set(relations.students_in_scope(conn, staff, staff_relationships, NOW))
            listed = disclosure.list_visible_students(
                conn, actor, purpose, None, NOW, "2026/27", 10, wrapping=TEST_WRAPPING
            )
            shown = {student.person_id for student in listed.students}
            assert shown <= in_scope
            for student in graph.students:
                path = graph.reachable_individually(staff, student, NOW)
                held = relations.relationships_to_student(conn, staff, student, staff_relationships, NOW)
                assert not held or path, held
                assert (student in in_scope) is bool(held)
                decision = decisions.check_access(
                    conn, actor, policy.STUDENT_VIEW, Resource("student", str(student)), "", "", purpose, NOW
                )
                assert not decision.allowed or path, decision.rule
                # A single check and the list answer from the same scope.
                assert decision.allowed is (student in shown) or listed.detail is not Detail.INDIVIDUAL
            for grant in graph.grants:
                if grant.staff == staff and grant.granted_at <= NOW < grant.expires_at:
                    held = relations.relationships_to_student(conn, staff, grant.student, {policy.BREAK_GLASS}, NOW)
                    assert held == {policy.BREAK_GLASS}
        students = list(graph.students)
        for student in students:
            actor = Actor(student, PersonKind.STUDENT)
            for other in {student, students[0], students[-1]}:
                decision = decisions.check_access(
                    conn, actor, policy.STUDENT_VIEW, Resource("student", str(other)), "", "", purpose, NOW
                )
                assert decision.allowed is (other == student and purpose in policy.STUDENT_DATA[policy.SELF])


def test_an_unknown_student_is_refused(pool: ConnectionPool) -> None:
    actor = Actor(uuid.uuid4(), PersonKind.STAFF)
    with pool.connection() as conn:
        decision = decisions.check_access(
            conn, actor, policy.STUDENT_VIEW, Resource("student", "p_unknown"), "", "", Purpose.ENGAGEMENT_SUPPORT, NOW
        )
    assert not decision.allowed
