"""Finding relationships: which students each relationship of the policy reaches, and which relationships a person
holds to a module run, a module, a school, a person or the audit log.

Each relationship's scope is one SQL fragment (SCOPES) returning the ids of the students it reaches for the person
%(actor)s at time %(now)s. The same fragment answers "is this student in scope" (with the student's id pushed into
it, so the look-up is indexed) and "which students are in scope", so the two can never disagree.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime

from tend_identity import policy
from tend_identity.store import Connection

_ACTIVE_ENROLMENT = "NOT e.withdrawn"


def _role_exists(role: str, scope_kind: str) -> str:
    return (
        "EXISTS (SELECT 1 FROM role_assignments ra WHERE ra.person_id = %(actor)s"
        f" AND ra.role = '{role}' AND ra.scope_kind = '{scope_kind}')"
    )


def _school_students(role: str) -> str:
    """Students of the schools where the person holds `role`: on the school's programmes or its modules."""
    return (
        "SELECT p.id FROM role_assignments ra JOIN programmes pg ON pg.school_id = ra.scope_id"
        " JOIN people p ON p.programme_id = pg.id AND p.kind = 'student'"
        f" WHERE ra.person_id = %(actor)s AND ra.role = '{role}' AND ra.scope_kind = 'school'"
        " UNION ALL"
        " SELECT e.student_id FROM role_assignments ra JOIN modules m ON m.school_id = ra.scope_id"
        " JOIN module_runs mr ON mr.module_id = m.id"
        f" JOIN enrolments e ON e.module_run_id = mr.id AND {_ACTIVE_ENROLMENT}"
        f" WHERE ra.person_id = %(actor)s AND ra.role = '{role}' AND ra.scope_kind = 'school'"
    )


def _faculty_students(role: str) -> str:
    """Students of the faculties where the person holds `role`: on their schools' programmes or modules."""
    return (
        "SELECT p.id FROM role_assignments ra JOIN schools s ON s.faculty_id = ra.scope_id"
        " JOIN programmes pg ON pg.school_id = s.id JOIN people p ON p.programme_id = pg.id AND p.kind = 'student'"
        f" WHERE ra.person_id = %(actor)s AND ra.role = '{role}' AND ra.scope_kind = 'faculty'"
        " UNION ALL"
        " SELECT e.student_id FROM role_assignments ra JOIN schools s ON s.faculty_id = ra.scope_id"
        " JOIN modules m ON m.school_id = s.id JOIN module_runs mr ON mr.module_id = m.id"
        f" JOIN enrolments e ON e.module_run_id = mr.id AND {_ACTIVE_ENROLMENT}"
        f" WHERE ra.person_id = %(actor)s AND ra.role = '{role}' AND ra.scope_kind = 'faculty'"
    )


def _every_student(role: str, where: str = "") -> str:
    return f"SELECT p.id FROM people p WHERE p.kind = 'student'{where} AND {_role_exists(role, 'institution')}"


def _taught(relation: str) -> str:
    return (
        "SELECT e.student_id FROM relationships r"
        f" JOIN enrolments e ON e.module_run_id = r.module_run_id AND {_ACTIVE_ENROLMENT}"
        f" WHERE r.person_id = %(actor)s AND r.relation = '{relation}'"
    )


_NOBODY = "SELECT NULL::uuid WHERE false"

SCOPES: Mapping[str, str] = {
    "personal_tutor": (
        "SELECT r.student_id FROM relationships r WHERE r.person_id = %(actor)s AND r.relation = 'personal_tutor_of'"
    ),
    "level_tutor": (
        "SELECT p.id FROM level_tutors lt JOIN people p"
        " ON p.programme_id = lt.programme_id AND p.level = lt.level AND p.kind = 'student'"
        " WHERE lt.person_id = %(actor)s"
    ),
    "teaches": _taught("teaches"),
    "leads_module": _taught("leads"),
    "programme_lead": (
        "SELECT p.id FROM role_assignments ra JOIN people p ON p.programme_id = ra.scope_id AND p.kind = 'student'"
        " WHERE ra.person_id = %(actor)s AND ra.role = 'programme_lead' AND ra.scope_kind = 'programme'"
    ),
    "director_of_school": _school_students("director_of_school"),
    "school_administrator": _school_students("school_administrator"),
    "faculty_pro_vice_chancellor": _faculty_students("faculty_pro_vice_chancellor"),
    "associate_dean_education": _faculty_students("associate_dean_education"),
    "executive_team": _every_student("executive_team"),
    "project_staff": _every_student("project_staff"),
    "student_services": _every_student("student_services"),
    "support_and_wellbeing": _every_student("support_and_wellbeing"),
    "visa_immigration": _every_student("visa_immigration", " AND p.sponsored_visa"),
    "data_protection_officer": _NOBODY,
    "system_administrator": _NOBODY,
    policy.SELF: "SELECT p.id FROM people p WHERE p.id = %(actor)s AND p.kind = 'student'",
    policy.BREAK_GLASS: (
        "SELECT g.student_id FROM break_glass_grants g"
        " WHERE g.person_id = %(actor)s AND g.granted_at <= %(now)s AND g.expires_at > %(now)s"
    ),
}

if set(SCOPES) != policy.RELATIONSHIP_NAMES:
    raise RuntimeError("every relationship of the policy needs a scope")


def relationships_to_student(
    conn: Connection, actor_id: uuid.UUID, student_id: uuid.UUID, candidates: Iterable[str], now: datetime
) -> frozenset[str]:
    """Which of `candidates` the person holds to the student, in one query."""
    names = sorted(set(candidates))
    if not names:
        return frozenset()
    columns = ", ".join(
        f"EXISTS (SELECT 1 FROM ({SCOPES[name]}) s (student_id) WHERE s.student_id = %(student)s)" for name in names
    )
    row = conn.execute(f"SELECT {columns}", {"actor": actor_id, "student": student_id, "now": now}).fetchone()
    return frozenset(name for name, held in zip(names, row or (), strict=True) if held)


def students_in_scope(
    conn: Connection,
    actor_id: uuid.UUID,
    relationships: Iterable[str],
    now: datetime,
    module_run_id: uuid.UUID | None = None,
    among: Sequence[uuid.UUID] | None = None,
) -> list[uuid.UUID]:
    """The distinct students the relationships reach, narrowed to those on the module run when one is given, and to
    `among` when given."""
    names = sorted(set(relationships))
    if not names:
        return []
    union = " UNION ".join(f"({SCOPES[name]})" for name in names)
    params: dict[str, object] = {"actor": actor_id, "now": now}
    sql = f"SELECT DISTINCT s.student_id FROM ({union}) s (student_id)"
    if module_run_id is not None:
        sql += (
            f" JOIN enrolments e ON e.student_id = s.student_id AND e.module_run_id = %(run)s AND {_ACTIVE_ENROLMENT}"
        )
        params["run"] = module_run_id
    if among is not None:
        sql += " WHERE s.student_id = ANY(%(among)s)"
        params["among"] = list(among)
    rows = conn.execute(sql + " ORDER BY 1", params).fetchall()
    return [row[0] for row in rows]


def relationships_to_module_run(conn: Connection, actor_id: uuid.UUID, module_run_id: uuid.UUID) -> frozenset[str]:
    rows = conn.execute(
        "SELECT relation FROM relationships WHERE person_id = %s AND module_run_id = %s AND relation IN"
        " ('teaches', 'leads')",
        (actor_id, module_run_id),
    ).fetchall()
    return frozenset("leads_module" if row[0] == "leads" else "teaches" for row in rows)


def relationships_to_module(conn: Connection, actor_id: uuid.UUID, module_id: uuid.UUID) -> frozenset[str]:
    row = conn.execute(
        "SELECT EXISTS (SELECT 1 FROM relationships r JOIN module_runs mr ON mr.id = r.module_run_id"
        "  WHERE r.person_id = %(actor)s AND r.relation = 'leads' AND mr.module_id = %(module)s),"
        " EXISTS (SELECT 1 FROM modules m JOIN role_assignments ra ON ra.scope_id = m.school_id"
        "  WHERE m.id = %(module)s AND ra.person_id = %(actor)s AND ra.role = 'school_administrator'"
        "  AND ra.scope_kind = 'school')",
        {"actor": actor_id, "module": module_id},
    ).fetchone()
    held = dict(zip(("leads_module", "school_administrator"), row or (False, False), strict=True))
    return frozenset(name for name, yes in held.items() if yes)


def relationships_to_school(conn: Connection, actor_id: uuid.UUID, school_id: uuid.UUID) -> frozenset[str]:
    rows = conn.execute(
        "SELECT role FROM role_assignments WHERE person_id = %s AND scope_kind = 'school' AND scope_id = %s"
        " AND role IN ('school_administrator', 'director_of_school')",
        (actor_id, school_id),
    ).fetchall()
    return frozenset(row[0] for row in rows)


def institution_roles(conn: Connection, actor_id: uuid.UUID) -> frozenset[str]:
    """The institution-wide roles the person holds (data protection officer, ...)."""
    rows = conn.execute(
        "SELECT role FROM role_assignments WHERE person_id = %s AND scope_kind = 'institution'", (actor_id,)
    ).fetchall()
    return frozenset(row[0] for row in rows)


def break_glass_grants(
    conn: Connection, actor_id: uuid.UUID, now: datetime
) -> tuple[tuple[uuid.UUID, datetime, datetime], ...]:
    """The person's break-glass grants not yet expired at `now`: (student, granted at, expires at)."""
    rows = conn.execute(
        "SELECT student_id, granted_at, expires_at FROM break_glass_grants WHERE person_id = %s AND expires_at > %s",
        (actor_id, now),
    ).fetchall()
    return tuple((row[0], row[1], row[2]) for row in rows)
