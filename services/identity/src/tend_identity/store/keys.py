"""Signing keys, pseudonym secrets and the pseudonyms issued."""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from tend_identity.store import Connection

# The tables holding secrets, which name them in the associated data of their wrapping.
SIGNING_KEYS = "signing_keys"
PSEUDONYM_KEYS = "pseudonym_keys"


@dataclass(frozen=True)
class StoredSecret:
    """A secret as its row holds it: wrapped by the key-encryption key whose id is `wrapped_by`, or raw when None."""

    value: bytes
    wrapped_by: str | None


@dataclass(frozen=True)
class StoredSigningKey:
    kid: str
    private_key: StoredSecret
    created_at: datetime
    retired_at: datetime | None


def _signing_key(row: tuple[Any, ...]) -> StoredSigningKey:
    return StoredSigningKey(row[0], StoredSecret(bytes(row[1]), row[2]), row[3], row[4])


def current_signing_key(conn: Connection) -> StoredSigningKey | None:
    row = conn.execute(
        "SELECT kid, private_key, wrapped_by, created_at, retired_at FROM signing_keys WHERE retired_at IS NULL"
    ).fetchone()
    return None if row is None else _signing_key(row)


def add_current_signing_key(conn: Connection, kid: str, private_key: StoredSecret) -> bool:
    """Adds a current key unless one exists (another process won the race); True if this one was added."""
    cursor = conn.execute(
        "INSERT INTO signing_keys (kid, private_key, wrapped_by) VALUES (%s, %s, %s) ON CONFLICT DO NOTHING",
        (kid, private_key.value, private_key.wrapped_by),
    )
    return cursor.rowcount == 1


def retire_current_signing_key(conn: Connection, at: datetime) -> None:
    conn.execute("UPDATE signing_keys SET retired_at = %s WHERE retired_at IS NULL", (at,))


def published_signing_keys(conn: Connection, retired_since: datetime) -> list[StoredSigningKey]:
    """The current key first, then keys retired at or after `retired_since`, newest first."""
    rows = conn.execute(
        "SELECT kid, private_key, wrapped_by, created_at, retired_at FROM signing_keys"
        " WHERE retired_at IS NULL OR retired_at >= %s"
        " ORDER BY retired_at DESC NULLS FIRST, created_at DESC",
        (retired_since,),
    ).fetchall()
    return [_signing_key(row) for row in rows]


def pseudonym_secret(conn: Connection, academic_year: str) -> StoredSecret | None:
    row = conn.execute(
        "SELECT secret, wrapped_by FROM pseudonym_keys WHERE academic_year = %s", (academic_year,)
    ).fetchone()
    return None if row is None else StoredSecret(bytes(row[0]), row[1])


def add_pseudonym_secret(conn: Connection, academic_year: str, secret: StoredSecret) -> None:
    conn.execute(
        "INSERT INTO pseudonym_keys (academic_year, secret, wrapped_by) VALUES (%s, %s, %s) ON CONFLICT DO NOTHING",
        (academic_year, secret.value, secret.wrapped_by),
    )


def stored_secrets_for_update(conn: Connection) -> list[tuple[str, str, StoredSecret]]:
    """Every stored secret as (table, row id, secret), rows locked until the transaction ends."""
    signing = conn.execute("SELECT kid, private_key, wrapped_by FROM signing_keys ORDER BY kid FOR UPDATE").fetchall()
    pseudonym = conn.execute(
        "SELECT academic_year, secret, wrapped_by FROM pseudonym_keys ORDER BY academic_year FOR UPDATE"
    ).fetchall()
    return [(SIGNING_KEYS, row[0], StoredSecret(bytes(row[1]), row[2])) for row in signing] + [
        (PSEUDONYM_KEYS, row[0], StoredSecret(bytes(row[1]), row[2])) for row in pseudonym
    ]


def replace_stored_secret(conn: Connection, table: str, row_id: str, secret: StoredSecret) -> None:
    if table == SIGNING_KEYS:
        query = "UPDATE signing_keys SET private_key = %s, wrapped_by = %s WHERE kid = %s"
    elif table == PSEUDONYM_KEYS:
        query = "UPDATE pseudonym_keys SET secret = %s, wrapped_by = %s WHERE academic_year = %s"
    else:
        raise ValueError(f"no secrets are stored in {table}")
    conn.execute(query, (secret.value, secret.wrapped_by, row_id))


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
