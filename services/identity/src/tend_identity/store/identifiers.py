"""Finding students by the identifiers source systems know them by."""

from __future__ import annotations

import uuid
from collections.abc import Sequence

from tend_identity.store import Connection

OULAD_SOURCE = "oulad"


def students_by_student_number(conn: Connection, values: Sequence[str]) -> dict[str, uuid.UUID]:
    rows = conn.execute(
        "SELECT student_number, id FROM people WHERE kind = 'student' AND student_number = ANY(%s)", (list(values),)
    ).fetchall()
    return {row[0]: row[1] for row in rows}


def students_by_username(conn: Connection, values: Sequence[str]) -> dict[str, uuid.UUID]:
    rows = conn.execute(
        "SELECT username, id FROM people WHERE kind = 'student' AND username = ANY(%s)", (list(values),)
    ).fetchall()
    return {row[0]: row[1] for row in rows}


def students_by_email(conn: Connection, values: Sequence[str]) -> dict[str, uuid.UUID]:
    """Keyed by the lower-cased address; addresses are matched without regard to case."""
    rows = conn.execute(
        "SELECT lower(email), id FROM people WHERE kind = 'student' AND lower(email) = ANY(%s)",
        ([value.lower() for value in values],),
    ).fetchall()
    return {row[0]: row[1] for row in rows}


def people_by_external_id(
    conn: Connection, source: str, values: Sequence[str], students_only: bool = False
) -> dict[str, uuid.UUID]:
    rows = conn.execute(
        "SELECT e.external_id, e.person_id FROM external_ids e JOIN people p ON p.id = e.person_id"
        " WHERE e.source = %s AND e.external_id = ANY(%s) AND (NOT %s OR p.kind = 'student')",
        (source, list(values), students_only),
    ).fetchall()
    return {row[0]: row[1] for row in rows}


def link_external_id(conn: Connection, source: str, external_id: str, person_id: uuid.UUID) -> None:
    conn.execute(
        "INSERT INTO external_ids (source, external_id, person_id) VALUES (%s, %s, %s)"
        " ON CONFLICT (source, external_id) DO UPDATE SET person_id = excluded.person_id",
        (source, external_id, person_id),
    )
