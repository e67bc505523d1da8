"""Signing in with a local account: check the password, then open a session."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from psycopg_pool import ConnectionPool

from tend_identity import passwords, sessions
from tend_identity.model import Person
from tend_identity.store import people as people_store

log = logging.getLogger(__name__)


class SignInRefused(Exception):
    """Unknown user name or wrong password; deliberately the same error for both."""


@dataclass(frozen=True)
class SignedIn:
    token: str
    person: Person
    expires_at: datetime


def sign_in(pool: ConnectionPool, username: str, password: str, ttl: timedelta, now: datetime) -> SignedIn:
    """Checks the password and opens a session; raises SignInRefused otherwise.

    The password check (argon2, deliberately slow) runs with no database connection held, so a burst of sign-ins
    cannot exhaust the pool.
    """
    with pool.connection() as conn:
        record = people_store.sign_in_record(conn, username)
    password_hash = None if record is None else record.password_hash
    matches = passwords.verify_password(password_hash, password)
    if record is None or password_hash is None or not matches:
        raise SignInRefused
    with pool.connection() as conn:
        if passwords.needs_rehash(password_hash):
            people_store.set_password_hash(conn, record.person_id, passwords.hash_password(password))
        person = people_store.person(conn, record.person_id)
        if person is None:  # removed between the two look-ups
            raise SignInRefused
        expires_at = now + ttl
        token = sessions.open_session(conn, person.id, expires_at)
    log.info("signed in", extra={"fields": {"person_id": str(person.id)}})
    return SignedIn(token=token, person=person, expires_at=expires_at)
