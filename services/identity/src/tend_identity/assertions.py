"""Assertions: short-lived signed statements of who the signed-in person is, which other services pass back to
identity (CheckAccess) or verify themselves with identity's public keys."""

from __future__ import annotations

import hashlib
import threading
import time
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
    return _verify(keyring, token)[0]


def _verify(keyring: Keyring, token: str) -> tuple[Actor, int]:
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
        actor = Actor(person_id=uuid.UUID(str(claims["sub"])), kind=PersonKind(claims["kind"]))
        return actor, int(claims["exp"])
    except (jwt.PyJWTError, ValueError) as exc:
        raise InvalidAssertion(type(exc).__name__) from exc


class VerifiedAssertions:
    """verify_assertion with a memory: an assertion, once verified, is taken as verified until it expires (it cannot
    change, and the key that signed it stays published that long), which spares a signature check on every call
    the same service makes for the same person. Bounded; thread-safe."""

    def __init__(self, keyring: Keyring, max_entries: int = 20_000) -> None:
        self._keyring = keyring
        self._max_entries = max_entries
        self._lock = threading.Lock()
        self._verified: dict[bytes, tuple[Actor, int]] = {}

    def verify(self, token: str) -> Actor:
        digest = hashlib.sha256(token.encode("utf-8")).digest()
        now = time.time()
        with self._lock:
            cached = self._verified.get(digest)
        if cached is not None and cached[1] > now:
            return cached[0]
        actor, expires = _verify(self._keyring, token)
        with self._lock:
            if len(self._verified) >= self._max_entries:
                self._verified = {key: value for key, value in self._verified.items() if value[1] > now}
                if len(self._verified) >= self._max_entries:
                    self._verified.clear()
            self._verified[digest] = (actor, expires)
        return actor
