"""Verification of the tokens identity signs (EdDSA compact JWS), against identity's published public keys.

The keys are fetched once and cached, and fetched again when a token names a key id not yet seen (after identity
rotated its key), at most once per `refresh_interval` so a flood of forged key ids cannot turn into a flood of calls.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

ISSUER = "tend-identity"

KeyFetcher = Callable[[], Mapping[str, bytes]]


class InvalidToken(Exception):
    """The token is malformed, expired, for another audience, or not signed by identity."""


class TokenVerifier:
    """Verifies tokens for one audience."""

    def __init__(
        self, fetch_keys: KeyFetcher, audience: str, leeway_seconds: float = 30.0, refresh_interval: float = 30.0
    ) -> None:
        self._fetch_keys = fetch_keys
        self._audience = audience
        self._leeway = leeway_seconds
        self._refresh_interval = refresh_interval
        self._keys: dict[str, Ed25519PublicKey] = {}
        self._fetched_at = float("-inf")
        self._lock = threading.Lock()

    def _refresh(self) -> None:
        with self._lock:
            if time.monotonic() - self._fetched_at < self._refresh_interval:
                return
            self._keys = {kid: Ed25519PublicKey.from_public_bytes(raw) for kid, raw in self._fetch_keys().items()}
            self._fetched_at = time.monotonic()

    def _key(self, kid: str) -> Ed25519PublicKey:
        key = self._keys.get(kid)
        if key is None:
            self._refresh()
            key = self._keys.get(kid)
        if key is None:
            raise InvalidToken("token signed with an unknown key")
        return key

    def verify(self, token: str) -> dict[str, Any]:
        """Returns the claims of a valid token; raises InvalidToken otherwise."""
        try:
            header = jwt.get_unverified_header(token)
            if header.get("alg") != "EdDSA":
                raise InvalidToken("token not signed with EdDSA")
            claims: dict[str, Any] = jwt.decode(
                token,
                key=self._key(str(header.get("kid", ""))),
                algorithms=["EdDSA"],
                audience=self._audience,
                issuer=ISSUER,
                leeway=self._leeway,
                options={"require": ["exp", "iat", "sub", "aud", "iss"]},
            )
        except jwt.PyJWTError as exc:
            raise InvalidToken(type(exc).__name__) from exc
        return claims
