"""People, their roles, their relationships (teaching, personal tutoring) and enrolments."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass

from tend_identity.model import ModuleRunSummary, Person, PersonKind
from tend_identity.store import Connection


@dataclass(frozen=True)
class SignInRecord:
    person_id: uuid.UUID
    password_hash: str | None


@dataclass(frozen=True)
class StudentCard:
    """What staff allowed to see a student individually are shown of them."""

    id: uuid.UUID
    display_name: str
    student_number: str | None
    sponsored_visa: bool


@dataclass(frozen=True)
class NewPerson:
    """Everything stored about a person when they are added."""

    id: uuid.UUID
    kind: PersonKind
    username: str
    display_name: str
    given_name: str
    family_name: str
    email: str
    student_number: str | None = None
    sponsored_visa: bool = False
    programme_id: uuid.UUID | None = None
    # Year of study, for students.
    level: int | None = None
    # The HR system's staff number, for staff; optional.
    staff_number: str | None = None


def sign_in_record(conn: Connection, username: str) -> SignInRecord | None:
    row = conn.execute("SELECT id, password_hash FROM people WHERE username = %s", (username,)).fetchone()
    return None if row is None else SignInRecord(row[0], row[1])


def set_password_hash(conn: Connection, person_id: uuid.UUID, password_hash: str) -> None:
    conn.execute("UPDATE people SET password_hash = %s WHERE id = %s", (password_hash, person_id))


def person(conn: Connection, person_id: uuid.UUID) -> Person | None:
    """The person with their role names (distinct, sorted)."""
    row = conn.execute(
        "SELECT p.kind, p.display_name,"
        " coalesce(array_agg(DISTINCT r.role ORDER BY r.role) FILTER (WHERE r.role IS NOT NULL), '{}')"
        " FROM people p LEFT JOIN role_assignments r ON r.person_id = p.id"
        " WHERE p.id = %s GROUP BY p.id",
        (person_id,),
    ).fetchone()
    if row is None:
        return None
    return Person(id=person_id, kind=PersonKind(row[0]), display_name=row[1], roles=tuple(row[2]))


def student_cards(conn: Connection, student_ids: Sequence[uuid.UUID]) -> list[StudentCard]:
    """The students among `student_ids`, in display name order."""
    rows = conn.execute(
        "SELECT id, display_name, student_number, sponsored_visa FROM people"
        " WHERE id = ANY(%s) AND kind = 'student' ORDER BY display_name, id",
        (list(student_ids),),
    ).fetchall()
    return [StudentCard(*row) for row in rows]


def teaches_or_leads(conn: Connection, person_id: uuid.UUID, module_run_id: uuid.UUID) -> bool:
    row = conn.execute(
        "SELECT EXISTS (SELECT 1 FROM relationships"
        " WHERE person_id = %s AND module_run_id = %s AND relation IN ('teaches', 'leads'))",
        (person_id, module_run_id),
    ).fetchone()
    return bool(row and row[0])


def teaching_module_runs(conn: Connection, person_id: uuid.UUID) -> list[ModuleRunSummary]:
    """Runs of modules not withdrawn that the person teaches or leads, in module code order."""
    rows = conn.execute(
        "SELECT DISTINCT mr.id, m.code, m.title, mr.academic_year, mr.term"
        " FROM relationships r"
        " JOIN module_runs mr ON mr.id = r.module_run_id"
        " JOIN modules m ON m.id = mr.module_id"
        " WHERE r.person_id = %s AND r.relation IN ('teaches', 'leads') AND m.deleted_at IS NULL"
        " ORDER BY m.code, mr.academic_year, mr.term",
        (person_id,),
    ).fetchall()
    return [ModuleRunSummary(*row) for row in rows]


def upsert_person(conn: Connection, new: NewPerson, password_hash: str | None) -> None:
    """Adds the person, or brings their details up to date; an existing password hash is kept."""
    conn.execute(
        "INSERT INTO people (id, kind, username, display_name, given_name, family_name, email, student_number,"
        " sponsored_visa, programme_id, password_hash, level, staff_number)"
        " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)"
        " ON CONFLICT (id) DO UPDATE SET kind = excluded.kind, username = excluded.username,"
        " display_name = excluded.display_name, given_name = excluded.given_name,"
        " family_name = excluded.family_name, email = excluded.email, student_number = excluded.student_number,"
        " sponsored_visa = excluded.sponsored_visa, programme_id = excluded.programme_id,"
        " password_hash = coalesce(people.password_hash, excluded.password_hash), level = excluded.level,"
        " staff_number = excluded.staff_number",
        (
            new.id,
            new.kind.value,
            new.username,
            new.display_name,
            new.given_name,
            new.family_name,
            new.email,
            new.student_number,
            new.sponsored_visa,
            new.programme_id,
            password_hash,
            new.level,
            new.staff_number,
        ),
    )


def add_role(conn: Connection, person_id: uuid.UUID, role: str, scope_kind: str, scope_id: uuid.UUID | None) -> None:
    conn.execute(
        "INSERT INTO role_assignments (person_id, role, scope_kind, scope_id) VALUES (%s, %s, %s, %s)"
        " ON CONFLICT DO NOTHING",
        (person_id, role, scope_kind, scope_id),
    )


def add_teaching(conn: Connection, person_id: uuid.UUID, relation: str, module_run_id: uuid.UUID) -> None:
    """Records that the person teaches or leads (`relation`) the module run."""
    conn.execute(
        "INSERT INTO relationships (person_id, relation, module_run_id) VALUES (%s, %s, %s) ON CONFLICT DO NOTHING",
        (person_id, relation, module_run_id),
    )


def add_personal_tutor(conn: Connection, tutor_id: uuid.UUID, student_id: uuid.UUID) -> None:
    conn.execute(
        "INSERT INTO relationships (person_id, relation, student_id) VALUES (%s, 'personal_tutor_of', %s)"
        " ON CONFLICT DO NOTHING",
        (tutor_id, student_id),
    )


def add_level_tutor(conn: Connection, tutor_id: uuid.UUID, programme_id: uuid.UUID, level: int) -> None:
    conn.execute(
        "INSERT INTO level_tutors (person_id, programme_id, level) VALUES (%s, %s, %s) ON CONFLICT DO NOTHING",
        (tutor_id, programme_id, level),
    )


def add_enrolment(conn: Connection, student_id: uuid.UUID, module_run_id: uuid.UUID) -> None:
    conn.execute(
        "INSERT INTO enrolments (student_id, module_run_id) VALUES (%s, %s) ON CONFLICT DO NOTHING",
        (student_id, module_run_id),
    )


def identifying_values(conn: Connection) -> list[str]:
    """Every family name, e-mail address, student number and staff number held, the values that must never leave
    identity."""
    rows = conn.execute(
        "SELECT family_name, email, student_number, staff_number FROM people ORDER BY username",
    ).fetchall()
    return [value for row in rows for value in row if value]


@dataclass(frozen=True)
class NamedPerson:
    id: uuid.UUID
    display_name: str


def by_institutional_identifier(conn: Connection, identifier: str) -> NamedPerson | None:
    """The student with this student number, or else the member of staff with this staff number, or else the member
    of staff with this user name (staff imported without a staff number are found by it). Each is unique, so at
    most one person matches each way, and the first way that matches wins."""
    row = conn.execute(
        "SELECT id, display_name FROM people"
        " WHERE (kind = 'student' AND student_number = %(value)s)"
        " OR (kind = 'staff' AND (staff_number = %(value)s OR username = %(value)s))"
        " ORDER BY kind = 'student' DESC, staff_number IS NOT DISTINCT FROM %(value)s DESC LIMIT 1",
        {"value": identifier},
    ).fetchone()
    return None if row is None else NamedPerson(row[0], row[1])
