"""Ed25519 signing keys and compact JWS (EdDSA) signing.

One key is current at a time and signs everything; it is created on first use. A rotated-out key stays published
(for verifiers) as long as a token it signed may still be valid.
"""

from __future__ import annotations

import base64
import hashlib
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat, PublicFormat
from psycopg_pool import ConnectionPool

from tend_identity.secret_wrapping import SecretWrapping
from tend_identity.store import keys as key_store

ALGORITHM = "EdDSA"


@dataclass(frozen=True)
class SigningKey:
    kid: str
    private_key: Ed25519PrivateKey

    @classmethod
    def generate(cls) -> SigningKey:
        private_key = Ed25519PrivateKey.generate()
        return cls(key_id(public_bytes(private_key.public_key())), private_key)

    @classmethod
    def from_private_bytes(cls, kid: str, raw: bytes) -> SigningKey:
        return cls(kid, Ed25519PrivateKey.from_private_bytes(raw))

    @property
    def private_bytes(self) -> bytes:
        return self.private_key.private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption())

    @property
    def public_bytes(self) -> bytes:
        return public_bytes(self.private_key.public_key())


@dataclass(frozen=True)
class PublishedKey:
    """A verification key as GetPublicKeys hands it out."""

    kid: str
    public_key: bytes


def public_bytes(public_key: Ed25519PublicKey) -> bytes:
    return public_key.public_bytes(Encoding.Raw, PublicFormat.Raw)


def key_id(public_key: bytes) -> str:
    """A short, stable id derived from the public key (the start of its SHA-256, base64url)."""
    return base64.urlsafe_b64encode(hashlib.sha256(public_key).digest()).decode("ascii")[:16]


def sign(key: SigningKey, claims: Mapping[str, Any]) -> str:
    """A compact JWS of `claims`, with the key id in the header so verifiers pick the right key."""
    return jwt.encode(dict(claims), key.private_key, algorithm=ALGORITHM, headers={"kid": key.kid})


class Keyring:
    """The signing keys kept in the database (private keys wrapped by `wrapping`), cached in memory.

    The current key and the verification keys are re-read every `cache_seconds`, so a rotation made by another
    process takes effect here too. Verification keys are also re-read on a key id not seen before, at most once per
    `miss_refresh_seconds`, so tokens naming forged key ids cannot turn into a flood of queries. Thread-safe.
    """

    def __init__(
        self,
        pool: ConnectionPool,
        retired_kept: timedelta,
        wrapping: SecretWrapping,
        cache_seconds: float = 60.0,
        miss_refresh_seconds: float = 5.0,
    ) -> None:
        self._pool = pool
        self.wrapping = wrapping
        self._retired_kept = retired_kept
        self._cache_seconds = cache_seconds
        self._miss_refresh_seconds = miss_refresh_seconds
        self._lock = threading.Lock()
        self._refresh_lock = threading.Lock()
        self._current: SigningKey | None = None
        self._current_read_at = float("-inf")
        self._verification_keys: dict[str, Ed25519PublicKey] = {}
        self._verification_read_at = float("-inf")

    def current(self) -> SigningKey:
        with self._lock:
            if self._current is None or time.monotonic() - self._current_read_at >= self._cache_seconds:
                self._current = self._load_or_create_current()
                self._current_read_at = time.monotonic()
            return self._current

    def sign(self, claims: Mapping[str, Any]) -> str:
        return sign(self.current(), claims)

    def published(self) -> list[PublishedKey]:
        """The current key first, then retired keys whose tokens may still be valid."""
        self.current()
        since = datetime.now(UTC) - self._retired_kept
        with self._pool.connection() as conn:
            stored = key_store.published_signing_keys(conn, since)
        return [PublishedKey(key.kid, self._signing_key(key).public_bytes) for key in stored]

    def verification_key(self, kid: str) -> Ed25519PublicKey | None:
        """The public key for `kid` if it is published, else None."""
        asked_at = time.monotonic()
        with self._lock:
            key = self._verification_keys.get(kid)
            seen = self._verification_read_at
            if asked_at - seen < (self._cache_seconds if key is not None else self._miss_refresh_seconds):
                return key
        # One thread re-reads; the others asking meanwhile wait for its answer rather than take the stale one (a
        # key id first seen by several calls at once would otherwise be refused to all but one of them).
        with self._refresh_lock:
            with self._lock:
                if self._verification_read_at != seen:
                    key = self._verification_keys.get(kid)
                    # Another thread re-read meanwhile: its answer stands, a miss for as long as any miss does.
                    if key is not None or time.monotonic() - self._verification_read_at < self._miss_refresh_seconds:
                        return key
            started = time.monotonic()
            keys = {k.kid: Ed25519PublicKey.from_public_bytes(k.public_key) for k in self.published()}
            with self._lock:
                self._verification_keys = keys
                self._verification_read_at = started
        return keys.get(kid)

    def rotate(self) -> SigningKey:
        """Retires the current key and makes a new one current."""
        new_key = SigningKey.generate()
        with self._pool.connection() as conn:
            key_store.retire_current_signing_key(conn, datetime.now(UTC))
            key_store.add_current_signing_key(conn, new_key.kid, self._stored(new_key))
        with self._lock:
            self._current = new_key
            self._current_read_at = time.monotonic()
            self._verification_read_at = float("-inf")
        return new_key

    def _load_or_create_current(self) -> SigningKey:
        with self._pool.connection() as conn:
            stored = key_store.current_signing_key(conn)
            if stored is None:
                candidate = SigningKey.generate()
                # Several processes may start at once; the unique index lets exactly one key become current.
                key_store.add_current_signing_key(conn, candidate.kid, self._stored(candidate))
                stored = key_store.current_signing_key(conn)
            if stored is None:
                raise RuntimeError("no current signing key after creating one")
            return self._signing_key(stored)

    def _stored(self, key: SigningKey) -> key_store.StoredSecret:
        return self.wrapping.wrap(key.private_bytes, key_store.SIGNING_KEYS, key.kid)

    def _signing_key(self, stored: key_store.StoredSigningKey) -> SigningKey:
        raw = self.wrapping.unwrap(stored.private_key, key_store.SIGNING_KEYS, stored.kid)
        return SigningKey.from_private_bytes(stored.kid, raw)
