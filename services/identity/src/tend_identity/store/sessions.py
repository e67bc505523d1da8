"""Sign-in sessions, looked up by the SHA-256 of their token."""

from __future__ import annotations

import uuid
from datetime import datetime

from tend_identity.store import Connection


def add_session(conn: Connection, token_sha256: bytes, person_id: uuid.UUID, expires_at: datetime) -> None:
    conn.execute(
        "INSERT INTO sign_in_sessions (token_sha256, person_id, expires_at) VALUES (%s, %s, %s)",
        (token_sha256, person_id, expires_at),
    )


def open_session_person(conn: Connection, token_sha256: bytes, now: datetime) -> uuid.UUID | None:
    """The person of a session that is neither expired nor revoked."""
    row = conn.execute(
        "SELECT person_id FROM sign_in_sessions WHERE token_sha256 = %s AND revoked_at IS NULL AND expires_at > %s",
        (token_sha256, now),
    ).fetchone()
    return None if row is None else row[0]


def revoke_session(conn: Connection, token_sha256: bytes, now: datetime) -> None:
    conn.execute(
        "UPDATE sign_in_sessions SET revoked_at = %s WHERE token_sha256 = %s AND revoked_at IS NULL",
        (now, token_sha256),
    )


def revoke_person_sessions(conn: Connection, person_id: uuid.UUID, now: datetime) -> int:
    """Revokes every open session of the person; returns how many."""
    cursor = conn.execute(
        "UPDATE sign_in_sessions SET revoked_at = %s WHERE person_id = %s AND revoked_at IS NULL AND expires_at > %s",
        (now, person_id, now),
    )
    return cursor.rowcount
