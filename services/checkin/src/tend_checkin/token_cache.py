"""Remembers check-in tokens already verified, for the rest of their lifetime.

A student's phone sends the same token to open the form and to check in, and verifying it (an Ed25519 signature and
PyJWT's checks) is the costliest step of a check-in after the broker's confirm. A token, once verified, stays valid
until it expires (identity's tokens are short-lived and not revocable), so its claims can be reused until then.
Only successful verifications are kept; a bad token is checked again every time.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Any, Protocol


class Verifier(Protocol):
    def verify(self, token: str) -> dict[str, Any]: ...


class CachingVerifier:
    """A Verifier in front of another; thread-safe; at most `max_entries` tokens, least recently used dropped."""

    def __init__(self, verifier: Verifier, max_entries: int = 50_000, clock: Callable[[], float] = time.time) -> None:
        self._verifier = verifier
        self._max_entries = max_entries
        self._clock = clock
        self._claims: OrderedDict[str, dict[str, Any]] = OrderedDict()
        self._lock = threading.Lock()

    def verify(self, token: str) -> dict[str, Any]:
        with self._lock:
            claims = self._claims.get(token)
            if claims is not None:
                if claims["exp"] > self._clock():
                    self._claims.move_to_end(token)
                    return claims
                del self._claims[token]
        claims = self._verifier.verify(token)
        if isinstance(claims.get("exp"), int | float):
            with self._lock:
                self._claims[token] = claims
                while len(self._claims) > self._max_entries:
                    self._claims.popitem(last=False)
        return claims
