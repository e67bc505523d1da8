"""Signing keys, pseudonym secrets and the pseudonyms issued."""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

from tend_identity.store import Connection


@dataclass(frozen=True)
class StoredSigningKey:
    kid: str
    private_key: bytes
    created_at: datetime
    retired_at: datetime | None


def current_signing_key(conn: Connection) -> StoredSigningKey | None:
    row = conn.execute(
        "SELECT kid, private_key, created_at, retired_at FROM signing_keys WHERE retired_at IS NULL"
    ).fetchone()
    return None if row is None else StoredSigningKey(row[0], bytes(row[1]), row[2], row[3])


def add_current_signing_key(conn: Connection, kid: str, private_key: bytes) -> bool:
    """Adds a current key unless one exists (another process won the race); True if this one was added."""
    cursor = conn.execute(
        "INSERT INTO signing_keys (kid, private_key) VALUES (%s, %s) ON CONFLICT DO NOTHING", (kid, private_key)
    )
    return cursor.rowcount == 1


def retire_current_signing_key(conn: Connection, at: datetime) -> None:
    conn.execute("UPDATE signing_keys SET retired_at = %s WHERE retired_at IS NULL", (at,))


def published_signing_keys(conn: Connection, retired_since: datetime) -> list[StoredSigningKey]:
    """The current key first, then keys retired at or after `retired_since`, newest first."""
    rows = conn.execute(
        "SELECT kid, private_key, created_at, retired_at FROM signing_keys"
        " WHERE retired_at IS NULL OR retired_at >= %s"
        " ORDER BY retired_at DESC NULLS FIRST, created_at DESC",
        (retired_since,),
    ).fetchall()
    return [StoredSigningKey(row[0], bytes(row[1]), row[2], row[3]) for row in rows]


def pseudonym_secret(conn: Connection, academic_year: str) -> bytes | None:
    row = conn.execute("SELECT secret FROM pseudonym_keys WHERE academic_year = %s", (academic_year,)).fetchone()
    return None if row is None else bytes(row[0])


def add_pseudonym_secret(conn: Connection, academic_year: str, secret: bytes) -> None:
    conn.execute(
        "INSERT INTO pseudonym_keys (academic_year, secret) VALUES (%s, %s) ON CONFLICT DO NOTHING",
        (academic_year, secret),
    )


def record_pseudonym(conn: Connection, pseudonym: str, person_id: uuid.UUID, academic_year: str) -> None:
    conn.execute(
        "INSERT INTO pseudonyms (pseudonym, person_id, academic_year) VALUES (%s, %s, %s) ON CONFLICT DO NOTHING",
        (pseudonym, person_id, academic_year),
    )


def person_of_pseudonym(conn: Connection, pseudonym: str) -> uuid.UUID | None:
    row = conn.execute("SELECT person_id FROM pseudonyms WHERE pseudonym = %s", (pseudonym,)).fetchone()
    return None if row is None else row[0]


def recorded_pseudonyms(conn: Connection, person_ids: Sequence[uuid.UUID], academic_year: str) -> dict[uuid.UUID, str]:
    rows = conn.execute(
        "SELECT person_id, pseudonym FROM pseudonyms WHERE academic_year = %s AND person_id = ANY(%s)",
        (academic_year, list(person_ids)),
    ).fetchall()
    return {row[0]: row[1] for row in rows}


def record_pseudonyms(conn: Connection, pseudonyms: Mapping[uuid.UUID, str], academic_year: str) -> None:
    with conn.cursor() as cursor:
        cursor.executemany(
            "INSERT INTO pseudonyms (pseudonym, person_id, academic_year) VALUES (%s, %s, %s) ON CONFLICT DO NOTHING",
            [(pseudonym, person_id, academic_year) for person_id, pseudonym in pseudonyms.items()],
        )


def people_of_pseudonyms(conn: Connection, pseudonyms: Sequence[str]) -> dict[str, uuid.UUID]:
    rows = conn.execute(
        "SELECT pseudonym, person_id FROM pseudonyms WHERE pseudonym = ANY(%s)", (list(pseudonyms),)
    ).fetchall()
    return {row[0]: row[1] for row in rows}
