"""Password hashing with argon2id (argon2-cffi's recommended parameters)."""

from __future__ import annotations

import functools

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

_hasher = PasswordHasher()


def hash_password(password: str) -> str:
    return _hasher.hash(password)


@functools.cache
def _dummy_hash() -> str:
    # Verified against when the account does not exist, so an unknown user name costs as much time as a wrong
    # password and response times do not reveal which user names exist.
    return _hasher.hash("tend: no such account")


def verify_password(password_hash: str | None, password: str) -> bool:
    """True if `password` matches `password_hash`. A missing hash (unknown account, or no local password) is
    checked against a dummy hash first, so it takes as long as a real check, and then refused."""
    if password_hash is None:
        _verify(_dummy_hash(), password)
        return False
    return _verify(password_hash, password)


def _verify(password_hash: str, password: str) -> bool:
    try:
        return _hasher.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


def needs_rehash(password_hash: str) -> bool:
    """True if the hash was made with weaker parameters than today's, so it should be replaced at sign-in."""
    return _hasher.check_needs_rehash(password_hash)
