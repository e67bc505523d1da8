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
