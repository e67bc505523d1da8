"""The verified-token cache: a token's claims are reused until it expires; a token that failed is checked again."""

from __future__ import annotations

from typing import Any

import pytest

from tend_checkin.token_cache import CachingVerifier
from tend_common.tokens import InvalidToken


class CountingVerifier:
    def __init__(self) -> None:
        self.calls: list[str] = []

    def verify(self, token: str) -> dict[str, Any]:
        self.calls.append(token)
        if token.startswith("bad"):
            raise InvalidToken("bad")
        return {"sub": f"p_{token}", "exp": 1_000}


class Clock:
    now = 900.0

    def __call__(self) -> float:
        return self.now


def test_claims_are_reused_until_the_token_expires() -> None:
    inner, clock = CountingVerifier(), Clock()
    verifier = CachingVerifier(inner, clock=clock)

    assert verifier.verify("a")["sub"] == "p_a"
    assert verifier.verify("a")["sub"] == "p_a"
    assert inner.calls == ["a"]

    clock.now = 1_000.0  # expired: verified again (and refused by the real verifier, which checks exp)
    verifier.verify("a")
    assert inner.calls == ["a", "a"]


def test_failures_are_never_cached() -> None:
    inner = CountingVerifier()
    verifier = CachingVerifier(inner, clock=Clock())
    for _ in range(2):
        with pytest.raises(InvalidToken):
            verifier.verify("bad-token")
    assert inner.calls == ["bad-token", "bad-token"]


def test_the_cache_is_bounded() -> None:
    inner = CountingVerifier()
    verifier = CachingVerifier(inner, max_entries=2, clock=Clock())
    for token in ("a", "b", "c", "a"):
        verifier.verify(token)
    assert inner.calls == ["a", "b", "c", "a"]
