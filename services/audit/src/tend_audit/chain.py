"""The hash chain over audit records.

The leaf hash of a record is SHA-256(0x00 || body), the Merkle tree's leaf hash (see `merkle`); the chain hash of
record n is SHA-256(chain hash of n-1 || leaf hash of n), starting from 32 zero bytes. The chain names the first
record that no longer fits without any signed head; the tree gives proofs and signed heads.
"""

from __future__ import annotations

import hashlib

from tend_audit.merkle import leaf_hash

__all__ = ["GENESIS", "chain_hash", "leaf_hash"]

GENESIS = bytes(32)


def chain_hash(previous: bytes, leaf: bytes) -> bytes:
    return hashlib.sha256(previous + leaf).digest()
