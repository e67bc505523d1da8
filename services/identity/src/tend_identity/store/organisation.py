"""The organisation: faculties, schools, programmes, modules and their runs."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from tend_identity.store import Connection


def upsert_faculty(conn: Connection, faculty_id: uuid.UUID, code: str, name: str) -> None:
    conn.execute(
        "INSERT INTO faculties (id, code, name) VALUES (%s, %s, %s)"
        " ON CONFLICT (id) DO UPDATE SET code = excluded.code, name = excluded.name",
        (faculty_id, code, name),
    )


def upsert_school(conn: Connection, school_id: uuid.UUID, faculty_id: uuid.UUID, code: str, name: str) -> None:
    conn.execute(
        "INSERT INTO schools (id, faculty_id, code, name) VALUES (%s, %s, %s, %s)"
        " ON CONFLICT (id) DO UPDATE SET faculty_id = excluded.faculty_id, code = excluded.code, name = excluded.name",
        (school_id, faculty_id, code, name),
    )


def upsert_programme(conn: Connection, programme_id: uuid.UUID, school_id: uuid.UUID, code: str, title: str) -> None:
    conn.execute(
        "INSERT INTO programmes (id, school_id, code, title) VALUES (%s, %s, %s, %s)"
        " ON CONFLICT (id) DO UPDATE SET school_id = excluded.school_id, code = excluded.code, title = excluded.title",
        (programme_id, school_id, code, title),
    )


def upsert_module(conn: Connection, module_id: uuid.UUID, school_id: uuid.UUID, code: str, title: str) -> None:
    conn.execute(
        "INSERT INTO modules (id, school_id, code, title) VALUES (%s, %s, %s, %s)"
        " ON CONFLICT (id) DO UPDATE SET school_id = excluded.school_id, code = excluded.code, title = excluded.title",
        (module_id, school_id, code, title),
    )


def withdraw_module(conn: Connection, module_id: uuid.UUID) -> None:
    """Soft-deletes a module: its runs stop being offered, their history stays."""
    conn.execute("UPDATE modules SET deleted_at = now() WHERE id = %s AND deleted_at IS NULL", (module_id,))


def add_programme_module(conn: Connection, programme_id: uuid.UUID, module_id: uuid.UUID) -> None:
    conn.execute(
        "INSERT INTO programme_modules (programme_id, module_id) VALUES (%s, %s) ON CONFLICT DO NOTHING",
        (programme_id, module_id),
    )


def upsert_module_run(
    conn: Connection, module_run_id: uuid.UUID, module_id: uuid.UUID, academic_year: str, term: str
) -> None:
    conn.execute(
        "INSERT INTO module_runs (id, module_id, academic_year, term) VALUES (%s, %s, %s, %s)"
        " ON CONFLICT (id) DO UPDATE SET module_id = excluded.module_id, academic_year = excluded.academic_year,"
        " term = excluded.term",
        (module_run_id, module_id, academic_year, term),
    )


@dataclass(frozen=True)
class StoredModule:
    id: uuid.UUID
    school_id: uuid.UUID
    code: str
    title: str
    deleted: bool


def module(conn: Connection, module_id: uuid.UUID) -> StoredModule | None:
    row = conn.execute(
        "SELECT id, school_id, code, title, deleted_at IS NOT NULL FROM modules WHERE id = %s", (module_id,)
    ).fetchone()
    return None if row is None else StoredModule(*row)


def module_code_taken(conn: Connection, code: str) -> bool:
    row = conn.execute("SELECT EXISTS (SELECT 1 FROM modules WHERE code = %s)", (code,)).fetchone()
    return bool(row and row[0])


def school_exists(conn: Connection, school_id: uuid.UUID) -> bool:
    row = conn.execute("SELECT EXISTS (SELECT 1 FROM schools WHERE id = %s)", (school_id,)).fetchone()
    return bool(row and row[0])


def set_module_title(conn: Connection, module_id: uuid.UUID, title: str) -> None:
    conn.execute("UPDATE modules SET title = %s WHERE id = %s", (title, module_id))


def restore_module(conn: Connection, module_id: uuid.UUID) -> None:
    conn.execute("UPDATE modules SET deleted_at = NULL WHERE id = %s", (module_id,))


@dataclass(frozen=True)
class StoredSchool:
    id: uuid.UUID
    code: str
    name: str


@dataclass(frozen=True)
class ModuleWithRelationships:
    """A module, its school, and which module-management relationships of the policy a person holds to it."""

    module: StoredModule
    school: StoredSchool
    relationships: frozenset[str]


def modules_related_to(conn: Connection, person_id: uuid.UUID) -> list[ModuleWithRelationships]:
    """Modules of schools the person administers and modules with a run the person leads, withdrawn ones included,
    in code order; each with the relationships held, found as relations.relationships_to_module finds them."""
    rows = conn.execute(
        "WITH administered AS ("
        "  SELECT scope_id AS school_id FROM role_assignments"
        "  WHERE person_id = %(person)s AND role = 'school_administrator' AND scope_kind = 'school'),"
        " led AS ("
        "  SELECT DISTINCT mr.module_id FROM relationships r JOIN module_runs mr ON mr.id = r.module_run_id"
        "  WHERE r.person_id = %(person)s AND r.relation = 'leads')"
        " SELECT m.id, m.school_id, m.code, m.title, m.deleted_at IS NOT NULL, s.code, s.name,"
        "  m.id IN (SELECT module_id FROM led), m.school_id IN (SELECT school_id FROM administered)"
        " FROM modules m JOIN schools s ON s.id = m.school_id"
        " WHERE m.id IN (SELECT module_id FROM led) OR m.school_id IN (SELECT school_id FROM administered)"
        " ORDER BY m.code",
        {"person": person_id},
    ).fetchall()
    found = []
    for module_id, school_id, code, title, deleted, school_code, school_name, leads, administers in rows:
        held = {"leads_module"} if leads else set()
        if administers:
            held.add("school_administrator")
        found.append(
            ModuleWithRelationships(
                StoredModule(module_id, school_id, code, title, deleted),
                StoredSchool(school_id, school_code, school_name),
                frozenset(held),
            )
        )
    return found


def runs_of_modules(conn: Connection, module_ids: list[uuid.UUID]) -> dict[uuid.UUID, list[tuple[uuid.UUID, str, str]]]:
    """Each module's runs as (run id, academic year, term), by year and term."""
    rows = conn.execute(
        "SELECT module_id, id, academic_year, term FROM module_runs WHERE module_id = ANY(%s)"
        " ORDER BY academic_year, term, id",
        (module_ids,),
    ).fetchall()
    runs: dict[uuid.UUID, list[tuple[uuid.UUID, str, str]]] = {}
    for module_id, run_id, year, term in rows:
        runs.setdefault(module_id, []).append((run_id, year, term))
    return runs


def schools_with_roles(conn: Connection, person_id: uuid.UUID) -> list[tuple[StoredSchool, frozenset[str]]]:
    """The schools where the person holds a school-scoped role, with those roles, in code order."""
    rows = conn.execute(
        "SELECT s.id, s.code, s.name, array_agg(DISTINCT ra.role) FROM role_assignments ra"
        " JOIN schools s ON s.id = ra.scope_id"
        " WHERE ra.person_id = %s AND ra.scope_kind = 'school' GROUP BY s.id, s.code, s.name ORDER BY s.code",
        (person_id,),
    ).fetchall()
    return [(StoredSchool(row[0], row[1], row[2]), frozenset(row[3])) for row in rows]
