"""Server-side sign-in sessions. The token is random and handed to the browser once; only its SHA-256 is stored."""

from __future__ import annotations

import hashlib
import secrets
import uuid
from datetime import datetime

from tend_identity.model import Person
from tend_identity.store import Connection
from tend_identity.store import people as people_store
from tend_identity.store import sessions as session_store

# Longer than any token this service issues; anything longer is not ours and is not worth hashing.
MAX_TOKEN_LENGTH = 256


def token_digest(token: str) -> bytes:
    return hashlib.sha256(token.encode("utf-8")).digest()


def open_session(conn: Connection, person_id: uuid.UUID, expires_at: datetime) -> str:
    """Opens a session for the person and returns its token."""
    token = secrets.token_urlsafe(32)
    session_store.add_session(conn, token_digest(token), person_id, expires_at)
    return token


def session_person(conn: Connection, token: str, now: datetime) -> Person | None:
    """The person signed in with `token`, or None if the session is unknown, expired or revoked."""
    if not token or len(token) > MAX_TOKEN_LENGTH:
        return None
    person_id = session_store.open_session_person(conn, token_digest(token), now)
    return None if person_id is None else people_store.person(conn, person_id)


def close_session(conn: Connection, token: str, now: datetime) -> None:
    """Revokes the session; an unknown token is not an error."""
    if token and len(token) <= MAX_TOKEN_LENGTH:
        session_store.revoke_session(conn, token_digest(token), now)


def close_every_session(conn: Connection, token: str, now: datetime) -> int:
    """Revokes every open session of the person signed in with `token` ("sign out everywhere"); 0 if the token
    opens no session."""
    if not token or len(token) > MAX_TOKEN_LENGTH:
        return 0
    person_id = session_store.open_session_person(conn, token_digest(token), now)
    if person_id is None:
        return 0
    return session_store.revoke_person_sessions(conn, person_id, now)
