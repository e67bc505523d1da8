"""An independent verifier of Merkle tree proofs, written from RFC 9162 sections 2.1.1, 2.1.3.2 and 2.1.4.2 alone.

It deliberately imports nothing from tend_audit: the proofs the service produces are checked by a second, minimal
implementation of the algorithms, so a shared mistake cannot make a wrong proof look right.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence


def hash_leaf(entry: bytes) -> bytes:
    return hashlib.sha256(b"\x00" + entry).digest()


def hash_children(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


def tree_hash(entries: Sequence[bytes]) -> bytes:
    """MTH(D[n]) by the definition: split at the largest power of two smaller than n."""
    n = len(entries)
    if n == 0:
        return hashlib.sha256(b"").digest()
    if n == 1:
        return hash_leaf(entries[0])
    k = 1
    while k * 2 < n:
        k *= 2
    return hash_children(tree_hash(entries[:k]), tree_hash(entries[k:]))


def verify_inclusion(
    leaf_index: int, tree_size: int, leaf_hash: bytes, path: Sequence[bytes], root_hash: bytes
) -> bool:
    """RFC 9162 section 2.1.3.2."""
    if leaf_index >= tree_size:
        return False
    fn, sn = leaf_index, tree_size - 1
    r = leaf_hash
    for p in path:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            r = hash_children(p, r)
            if not fn & 1:
                while not fn & 1 and fn != 0:
                    fn >>= 1
                    sn >>= 1
        else:
            r = hash_children(r, p)
        fn >>= 1
        sn >>= 1
    return sn == 0 and r == root_hash


def verify_consistency(first: int, second: int, first_hash: bytes, second_hash: bytes, proof: Sequence[bytes]) -> bool:
    """RFC 9162 section 2.1.4.2 (equal sizes: an empty proof and equal roots)."""
    if first == second:
        return not proof and first_hash == second_hash
    if first == 0 or first > second or not proof:
        return False
    path = list(proof)
    if first & (first - 1) == 0:
        path.insert(0, first_hash)
    fn, sn = first - 1, second - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            fr = hash_children(c, fr)
            sr = hash_children(c, sr)
            if not fn & 1:
                while not fn & 1 and fn != 0:
                    fn >>= 1
                    sn >>= 1
        else:
            sr = hash_children(sr, c)
        fn >>= 1
        sn >>= 1
    return fr == first_hash and sr == second_hash and sn == 0
