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


# The audience of assertions the portal presents on its own calls to identity (it asks for the person at the browser,
# not as a relay for another service).
IDENTITY_AUDIENCE = "identity"
PORTAL = "portal"


class InvalidAssertion(Exception):
    """Malformed, expired, not signed by identity, or not an assertion of a person."""


class AssertionForAnotherService(InvalidAssertion):
    """A valid assertion, issued for a service other than the one presenting it: replayed, so refused."""

    def __init__(self, audience: str, expected: str) -> None:
        super().__init__(f"assertion issued for {audience}, presented where one for {expected} is required")
        self.audience = audience
        self.expected = expected


def expected_audience(calling_service: str) -> str | None:
    """The audience an assertion must have been issued for when `calling_service` presents it to identity: the
    service's own name, or "identity" from the portal, which asks identity directly for the person at the browser.
    None when no caller is authenticated (service authentication off, in a single-service development run): there is
    then no caller to bind the assertion to."""
    if not calling_service:
        return None
    return IDENTITY_AUDIENCE if calling_service == PORTAL else calling_service


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


def verify_assertion(keyring: Keyring, token: str, audience: str | None) -> Actor:
    """The actor an assertion states, if identity signed it, it has not expired and it was issued for `audience`
    (any audience when None)."""
    actor, _expires, issued_for = _verify(keyring, token)
    _check_audience(issued_for, audience)
    return actor


def _check_audience(issued_for: str, audience: str | None) -> None:
    if audience is not None and issued_for != audience:
        raise AssertionForAnotherService(issued_for, audience)


def _verify(keyring: Keyring, token: str) -> tuple[Actor, int, str]:
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
        return actor, int(claims["exp"]), str(claims["aud"])
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
        self._verified: dict[bytes, tuple[Actor, int, str]] = {}

    def verify(self, token: str, audience: str | None) -> Actor:
        """As verify_assertion; the audience is checked on every call, cached or not (the same assertion may be
        presented by another service)."""
        digest = hashlib.sha256(token.encode("utf-8")).digest()
        now = time.time()
        with self._lock:
            cached = self._verified.get(digest)
        if cached is not None and cached[1] > now:
            _check_audience(cached[2], audience)
            return cached[0]
        actor, expires, issued_for = _verify(self._keyring, token)
        with self._lock:
            if len(self._verified) >= self._max_entries:
                self._verified = {key: value for key, value in self._verified.items() if value[1] > now}
                if len(self._verified) >= self._max_entries:
                    self._verified.clear()
            self._verified[digest] = (actor, expires, issued_for)
        _check_audience(issued_for, audience)
        return actor
