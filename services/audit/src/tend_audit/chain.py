"""The hash chain over audit records.

The leaf hash of a record is SHA-256(0x00 || body), as RFC 6962 hashes Merkle tree leaves, so the same leaves can
later feed a Merkle tree; the chain hash of record n is SHA-256(chain hash of n-1 || leaf hash of n), starting from 32
zero bytes.
"""

from __future__ import annotations

import hashlib

GENESIS = bytes(32)


def leaf_hash(body: bytes) -> bytes:
    return hashlib.sha256(b"\x00" + body).digest()


def chain_hash(previous: bytes, leaf: bytes) -> bytes:
    return hashlib.sha256(previous + leaf).digest()
