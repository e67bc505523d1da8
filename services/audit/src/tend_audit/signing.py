"""Audit's Ed25519 signing key, and the exact bytes it signs for tree heads and checkpoints.

The key comes from the `signing_key` setting (base64 of the 32-byte private key, from a secret store) or, when that is
empty, is generated once and kept in audit's database. Either way its public half is recorded in `signing_keys`
under its key id (the first 16 hex digits of SHA-256 of the public key), so every head it signed stays verifiable.
A key kept in the database protects against a change made through a query, not against someone holding a copy of
the database; production deployments set the key from a secret store.
"""

from __future__ import annotations

import base64
import hashlib
import struct
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import psycopg
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat, PublicFormat

TREE_HEAD_CONTEXT = b"tend-audit-tree-head-v1\n"
CHECKPOINT_CONTEXT = b"tend-audit-checkpoint-v1\n"


class SigningKeyError(ValueError):
    """The signing key setting is not a base64 Ed25519 private key."""


def key_id_of(public_key: bytes) -> str:
    return hashlib.sha256(public_key).hexdigest()[:16]


def signing_time(moment: datetime) -> datetime:
    """`moment` in UTC to the millisecond: what a signature covers, and so exactly what is stored beside it."""
    return moment.astimezone(UTC).replace(microsecond=moment.microsecond // 1000 * 1000)


def _millis(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


def tree_head_message(tree_size: int, root_hash: bytes, signed_at: datetime) -> bytes:
    """What a tree head signature covers: context, size and time (milliseconds since the epoch, big-endian), root."""
    return TREE_HEAD_CONTEXT + struct.pack(">QQ", tree_size, _millis(signed_at)) + root_hash


def checkpoint_message(
    tree_size: int, root_hash: bytes, chain_hash: bytes, frontier: Sequence[bytes], signed_at: datetime
) -> bytes:
    """What a checkpoint signature covers: as a tree head, then the chain hash and the frontier, largest first."""
    return (
        CHECKPOINT_CONTEXT
        + struct.pack(">QQ", tree_size, _millis(signed_at))
        + root_hash
        + chain_hash
        + b"".join(frontier)
    )


@dataclass(frozen=True)
class SigningKey:
    key_id: str
    private_key: Ed25519PrivateKey

    @property
    def public_bytes(self) -> bytes:
        return self.private_key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)

    def sign(self, message: bytes) -> bytes:
        return self.private_key.sign(message)

    @classmethod
    def from_private_bytes(cls, raw: bytes) -> SigningKey:
        private = Ed25519PrivateKey.from_private_bytes(raw)
        public = private.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
        return cls(key_id_of(public), private)


def parse_signing_key(text: str) -> SigningKey:
    try:
        return SigningKey.from_private_bytes(base64.b64decode(text, validate=True))
    except ValueError as exc:
        raise SigningKeyError("signing key must be 32 bytes of base64 (an Ed25519 private key)") from exc


def load_signing_key(conn: psycopg.Connection[Any], setting: str) -> SigningKey:
    """The key to sign with: the setting's, or the one kept in the database (generated on first use)."""
    with conn.transaction():
        # One process generates the key even when several start at once.
        conn.execute("LOCK TABLE signing_keys IN SHARE ROW EXCLUSIVE MODE")
        if setting:
            key = parse_signing_key(setting)
            conn.execute(
                "INSERT INTO signing_keys (key_id, public_key) VALUES (%s, %s) ON CONFLICT (key_id) DO NOTHING",
                (key.key_id, key.public_bytes),
            )
            return key
        row = conn.execute(
            "SELECT private_key FROM signing_keys WHERE private_key IS NOT NULL ORDER BY created_at DESC LIMIT 1"
        ).fetchone()
        if row is not None:
            return SigningKey.from_private_bytes(bytes(row[0]))
        private = Ed25519PrivateKey.generate()
        key = SigningKey(key_id_of(private.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)), private)
        raw = private.private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption())
        conn.execute(
            "INSERT INTO signing_keys (key_id, public_key, private_key) VALUES (%s, %s, %s)",
            (key.key_id, key.public_bytes, raw),
        )
        return key


def public_keys(conn: psycopg.Connection[Any]) -> dict[str, bytes]:
    """Every key id audit has signed with, and its raw public key, oldest first."""
    rows = conn.execute("SELECT key_id, public_key FROM signing_keys ORDER BY created_at, key_id").fetchall()
    return {str(key_id): bytes(public) for key_id, public in rows}


def signature_valid(public_key: bytes, signature: bytes, message: bytes) -> bool:
    try:
        Ed25519PublicKey.from_public_bytes(public_key).verify(signature, message)
    except (InvalidSignature, ValueError):
        return False
    return True
