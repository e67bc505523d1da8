"""Check-in tokens: what a student's browser presents to checkin. The subject is the student's pseudonym for the
academic year, never the person id, so checkin learns nothing that identifies the student."""

from __future__ import annotations

import secrets
from datetime import datetime, timedelta

from tend_common.tokens import ISSUER
from tend_identity import pseudonyms
from tend_identity.model import IssuedToken, Person, PersonKind
from tend_identity.signing import Keyring
from tend_identity.store import Connection

AUDIENCE = "checkin"


class NotAStudent(Exception):
    """Only students check in."""


def issue_checkin_token(
    conn: Connection, keyring: Keyring, person: Person, academic_year: str, ttl: timedelta, now: datetime
) -> IssuedToken:
    if person.kind is not PersonKind.STUDENT:
        raise NotAStudent
    issued_at = int(now.timestamp())
    expires_at = issued_at + int(ttl.total_seconds())
    token = keyring.sign(
        {
            "iss": ISSUER,
            "sub": pseudonyms.pseudonym_of(conn, keyring.wrapping, person.id, academic_year),
            "aud": AUDIENCE,
            "iat": issued_at,
            "exp": expires_at,
            "jti": secrets.token_urlsafe(16),
        }
    )
    return IssuedToken(token=token, expires_at=datetime.fromtimestamp(expires_at, tz=now.tzinfo))
