from __future__ import annotations

import re

from psycopg_pool import ConnectionPool

from tend_identity import demo
from tend_identity.model import PersonKind
from tend_identity.store import Connection

TABLES = (
    "faculties", "schools", "programmes", "programme_modules", "modules", "module_runs", "people",
    "role_assignments", "relationships", "enrolments", "level_tutors",
)  # fmt: skip


def _snapshot(conn: Connection) -> dict[str, object]:
    """Row counts of every demo table, and a digest of the people and relationship rows."""
    counts = {table: conn.execute(f"SELECT count(*) FROM {table}").fetchone() for table in TABLES}
    people = conn.execute("SELECT md5(string_agg(p::text, ',' ORDER BY id)) FROM people p").fetchone()
    relations = conn.execute(
        "SELECT md5(string_agg(concat_ws('/', person_id, relation, module_run_id, student_id), ','"
        " ORDER BY person_id, relation, module_run_id, student_id)) FROM relationships"
    ).fetchone()
    return {**counts, "people": people, "relationships": relations}


def test_loading_twice_leaves_the_same_data(pool: ConnectionPool, demo_password_hash: str) -> None:
    university = demo.build_demo()
    with pool.connection() as conn:
        demo.load_demo(conn, university, demo_password_hash)
    with pool.connection() as conn:
        first = _snapshot(conn)
    with pool.connection() as conn:
        # A second load hashes the password afresh; the hashes already stored must be kept.
        demo.load_demo(conn, demo.build_demo(), "a-different-hash")
    with pool.connection() as conn:
        second = _snapshot(conn)

    assert first == second
    assert first["people"] is not None
    assert first["faculties"] == (1,)
    assert first["schools"] == (2,)
    assert first["programmes"] == (3,)
    assert first["modules"] == (6,)
    assert first["module_runs"] == (6,)


def test_the_demo_university_has_the_promised_shape() -> None:
    university = demo.build_demo()
    staff = [p for p in university.people if p.kind is PersonKind.STAFF]
    students = [p for p in university.people if p.kind is PersonKind.STUDENT]

    assert len(staff) == 17
    assert len(students) == 200
    assert 0.12 <= sum(s.sponsored_visa for s in students) / len(students) <= 0.18
    assert {role for _person, role, _kind, _scope in university.roles} >= {
        "lecturer", "personal_tutor", "programme_lead", "director_of_school", "school_administrator",
        "faculty_pro_vice_chancellor", "student_services", "support_and_wellbeing", "visa_immigration",
        "data_protection_officer", "system_administrator", "level_tutor", "associate_dean_education",
        "executive_team", "project_staff",
    }  # fmt: skip
    assert {s.level for s in students} == {1, 2, 3}
    assert [(level, programme) for _tutor, programme, level in university.level_tutors] == [
        (1, demo.demo_id("programme", "BSC-CS"))
    ]
    assert {relation for _person, relation, _run in university.teaching} == {"teaches", "leads"}
    tutored = {student for _tutor, student in university.tutors}
    assert tutored == {s.id for s in students}
    for student in students:
        runs = [run for who, run in university.enrolments if who == student.id]
        assert len(runs) >= 3
    assert {p.username for p in staff} >= {"lecturer1", "tutor1"}
    assert all(p.staff_number and p.student_number is None for p in staff)
    assert len({p.staff_number for p in staff}) == len(staff)
    assert all(p.student_number and p.staff_number is None for p in students)
    assert students[0].username == "student001"


def test_the_same_seed_gives_the_same_people_and_another_seed_other_canaries() -> None:
    assert demo.build_demo(7).people == demo.build_demo(7).people
    assert demo.build_demo(7).people != demo.build_demo(8).people
    assert [p.id for p in demo.build_demo(7).people] == [p.id for p in demo.build_demo(8).people]


def test_every_canary_is_unique_and_searchable(demo_pool: ConnectionPool) -> None:
    with demo_pool.connection() as conn:
        canaries = demo.demo_canaries(conn)

    assert len(canaries) == 217 * 3  # family name, e-mail, and a student or staff number each
    assert len(set(canaries)) == len(canaries)
    for canary in canaries:
        assert re.fullmatch(
            r"Canary-[0-9a-f]{6}|canary-[0-9a-f]{6}@demo\.tend\.invalid|CN[0-9A-F]{6}|SN[0-9A-F]{6}", canary
        )


def test_the_logins_table_shows_no_personal_data() -> None:
    university = demo.build_demo()
    table = demo.format_logins(university.logins)

    assert "tend-demo" in table
    assert "demo" in table.splitlines()[0]
    assert "lecturer1" in table
    assert "student001" in table
    for person in university.people:
        for value in (person.family_name, person.email, person.student_number):
            assert value is None or value not in table


def test_the_demo_holds_every_relationship_of_the_policy() -> None:
    from tend_identity import policy

    university = demo.build_demo()
    held = {role for _person, role, _kind, _scope in university.roles}
    held |= {"leads_module" if relation == "leads" else relation for _p, relation, _run in university.teaching}
    held |= {"personal_tutor"} if university.tutors else set()
    held |= {"level_tutor"} if university.level_tutors else set()

    assert held >= policy.RELATIONSHIP_NAMES - {policy.SELF, policy.BREAK_GLASS}
