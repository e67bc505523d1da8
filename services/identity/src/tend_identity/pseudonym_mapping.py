"""Mapping source systems' identifiers of students to pseudonyms, so that ingest keys events by pseudonym at the
door. Only students are mapped: an identifier of a member of staff, or of nobody, is simply absent."""

from __future__ import annotations

import enum
from collections.abc import Sequence

from tend_identity import pseudonyms
from tend_identity.secret_wrapping import SecretWrapping
from tend_identity.store import Connection, identifiers


class IdentifierKind(enum.Enum):
    STUDENT_NUMBER = "student_number"
    EMAIL = "email"
    USERNAME = "username"
    OULAD_ID = "oulad_id"


def map_to_pseudonyms(
    conn: Connection, wrapping: SecretWrapping, kind: IdentifierKind, values: Sequence[str], academic_year: str
) -> dict[str, str]:
    """Identifier (as given) to pseudonym, for each identifier naming a known student."""
    wanted = list(dict.fromkeys(values))
    if kind is IdentifierKind.EMAIL:
        by_lower = identifiers.students_by_email(conn, wanted)
        found = {value: by_lower[value.lower()] for value in wanted if value.lower() in by_lower}
    elif kind is IdentifierKind.STUDENT_NUMBER:
        found = identifiers.students_by_student_number(conn, wanted)
    elif kind is IdentifierKind.USERNAME:
        found = identifiers.students_by_username(conn, wanted)
    else:
        found = identifiers.people_by_external_id(conn, identifiers.OULAD_SOURCE, wanted, students_only=True)
    names = pseudonyms.pseudonyms_of(conn, wrapping, list(found.values()), academic_year)
    return {value: names[person_id] for value, person_id in found.items()}
