"""Assertions: short-lived signed statements of who the signed-in person is, which other services pass back to
identity (CheckAccess) or verify themselves with identity's public keys."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import Any

import jwt

from tend_common.tokens import ISSUER
from tend_identity.model import Actor, Person, PersonKind
from tend_identity.signing import ALGORITHM, Keyring

# Clock difference between machines tolerated on iat and exp.
LEEWAY_SECONDS = 30


class InvalidAssertion(Exception):
    """Malformed, expired, not signed by identity, or not an assertion of a person."""


def issue_assertion(keyring: Keyring, person: Person, audience: str, ttl: timedelta, now: datetime) -> str:
    issued_at = int(now.timestamp())
    return keyring.sign(
        {
            "iss": ISSUER,
            "sub": str(person.id),
            "aud": audience,
            "iat": issued_at,
            "exp": issued_at + int(ttl.total_seconds()),
            "kind": person.kind.value,
        }
    )


def verify_assertion(keyring: Keyring, token: str) -> Actor:
    """The actor an assertion states, if identity signed it and it has not expired. Any audience is accepted: an
    assertion issued to one service may be shown to identity by that service."""
    try:
        header = jwt.get_unverified_header(token)
        if header.get("alg") != ALGORITHM:
            raise InvalidAssertion("not signed with EdDSA")
        key = keyring.verification_key(str(header.get("kid", "")))
        if key is None:
            raise InvalidAssertion("unknown signing key")
        claims: dict[str, Any] = jwt.decode(
            token,
            key=key,
            algorithms=[ALGORITHM],
            issuer=ISSUER,
            leeway=LEEWAY_SECONDS,
            options={"verify_aud": False, "require": ["exp", "iat", "sub", "aud", "iss", "kind"]},
        )
        return Actor(person_id=uuid.UUID(str(claims["sub"])), kind=PersonKind(claims["kind"]))
    except (jwt.PyJWTError, ValueError) as exc:
        raise InvalidAssertion(type(exc).__name__) from exc
