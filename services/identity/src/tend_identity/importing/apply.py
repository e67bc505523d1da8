"""Running an import: the file in one transaction, applied whole or rolled back, with a digest of identity's
records before and after to say whether anything changed."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import psycopg

from tend_identity.importing import oulad, student_records
from tend_identity.importing.rows import ImportRejected
from tend_identity.importing.student_records import Summary
from tend_identity.store import Connection

Importer = Callable[[Connection, bytes], Summary]

KINDS: dict[str, Importer] = {
    **{
        kind: (lambda conn, data, kind=kind: student_records.import_records(conn, kind, data))  # type: ignore[misc]
        for kind in student_records.FORMATS
    },
    "oulad-students": oulad.import_student_info,
    "oulad-registrations": oulad.import_registrations,
}

_DIGESTED_TABLES = (
    "faculties", "schools", "programmes", "modules", "module_runs", "people", "role_assignments", "relationships",
    "level_tutors", "enrolments", "external_ids",
)  # fmt: skip


@dataclass(frozen=True)
class Outcome:
    rows: int
    changed: bool


def records_digest(conn: Connection) -> str:
    """One digest of every record an import can write (timestamps of creation excluded, ids included)."""
    parts = []
    for table in _DIGESTED_TABLES:
        row = conn.execute(
            f"SELECT coalesce(md5(string_agg(r, ',' ORDER BY r)), '') FROM"
            f" (SELECT (to_jsonb(t) - 'created_at' - 'password_hash')::text AS r FROM {table} t) rows"
        ).fetchone()
        parts.append(f"{table}:{row[0] if row else ''}")
    return ";".join(parts)


def run_import(conn: psycopg.Connection[tuple[object, ...]], kind: str, data: bytes) -> Outcome:
    """Imports in one transaction; ImportRejected (nothing applied) if any row is wrong."""
    importer = KINDS[kind]
    with conn.transaction():
        before = records_digest(conn)
        summary = importer(conn, data)
        changed = records_digest(conn) != before
    return Outcome(rows=summary.rows, changed=changed)


__all__ = ["KINDS", "ImportRejected", "Outcome", "records_digest", "run_import"]
