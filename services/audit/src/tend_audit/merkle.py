"""The Merkle tree over the audit log, as RFC 9162 (Certificate Transparency 2.0) section 2.1 defines it.

Leaf i (0-based; record seq i + 1) hashes to SHA-256(0x00 || event bytes); an interior node to SHA-256(0x01 || left ||
right); the tree of n leaves splits at the largest power of two below n. A node here is a perfect subtree: `Node(level,
index)` covers leaves [index * 2^level, (index + 1) * 2^level). Every node is final once its last leaf is appended, so
the log stores each one as it completes and a proof is a handful of look-ups, never a recomputation.

A tree of n leaves is the perfect subtrees of n's binary representation, largest first (its frontier); appending a
leaf merges equal-sized subtrees like a binary counter, so an append costs O(1) amortised hashes.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

EMPTY_ROOT = hashlib.sha256(b"").digest()


def leaf_hash(body: bytes) -> bytes:
    return hashlib.sha256(b"\x00" + body).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


@dataclass(frozen=True, order=True)
class Node:
    """A perfect subtree: leaves [index << level, (index + 1) << level)."""

    level: int
    index: int

    @property
    def first_leaf(self) -> int:
        return self.index << self.level


def frontier_nodes(size: int) -> list[Node]:
    """The perfect subtrees that make up a tree of `size` leaves, largest (leftmost) first."""
    nodes: list[Node] = []
    covered = 0
    for level in range(size.bit_length() - 1, -1, -1):
        if size >> level & 1:
            nodes.append(Node(level, covered >> level))
            covered += 1 << level
    return nodes


def fold(hashes: Sequence[bytes]) -> bytes:
    """The root over perfect subtrees given largest first: the rightmost pair is joined first, as RFC 9162 splits."""
    if not hashes:
        return EMPTY_ROOT
    root = hashes[-1]
    for left in reversed(hashes[:-1]):
        root = node_hash(left, root)
    return root


class Frontier:
    """The roots of a tree's perfect subtrees, enough to append and to compute the root."""

    def __init__(self, size: int = 0, hashes: Sequence[bytes] = ()) -> None:
        if len(hashes) != bin(size).count("1"):
            raise ValueError(f"a tree of {size} leaves has {bin(size).count('1')} frontier hashes, not {len(hashes)}")
        self.size = size
        self.hashes = list(hashes)

    def append(self, leaf: bytes) -> list[tuple[int, int, bytes]]:
        """Adds a leaf; returns the interior nodes it completed as (level, index, hash), lowest first."""
        index = self.size
        self.size += 1
        completed: list[tuple[int, int, bytes]] = []
        current = leaf
        level = 0
        # Each trailing one bit of the old size is a subtree of the new leaf's height waiting for its right half.
        while index >> level & 1:
            current = node_hash(self.hashes.pop(), current)
            level += 1
            completed.append((level, index >> level, current))
        self.hashes.append(current)
        return completed

    def root(self) -> bytes:
        return fold(self.hashes)


def _largest_power_of_two_below(n: int) -> int:
    return 1 << ((n - 1).bit_length() - 1)


@dataclass(frozen=True)
class Range:
    """The leaves [start, end) whose tree hash MTH(D[start:end]) is one element of a proof."""

    start: int
    end: int

    def nodes(self) -> list[Node]:
        """The perfect subtrees this range folds from. Proof ranges always start at a multiple of their largest
        power-of-two part, so these are whole stored nodes."""
        found: list[Node] = []
        start, end = self.start, self.end
        while start < end:
            size = end - start
            part = size if size & (size - 1) == 0 else _largest_power_of_two_below(size)
            level = part.bit_length() - 1
            if start % part:
                raise ValueError(f"range [{self.start}, {self.end}) is not aligned to whole subtrees")
            found.append(Node(level, start >> level))
            start += part
        return found


def inclusion_ranges(leaf_index: int, tree_size: int) -> list[Range]:
    """PATH(m, D[n]) of RFC 9162 section 2.1.3.1, as ranges, from the leaf upwards."""
    if not 0 <= leaf_index < tree_size:
        raise ValueError(f"leaf {leaf_index} is not in a tree of {tree_size} leaves")
    path: list[Range] = []
    start, end, m = 0, tree_size, leaf_index
    while end - start > 1:
        k = _largest_power_of_two_below(end - start)
        if m < k:
            path.append(Range(start + k, end))
            end = start + k
        else:
            path.append(Range(start, start + k))
            start, m = start + k, m - k
    path.reverse()
    return path


def consistency_ranges(first_size: int, second_size: int) -> list[Range]:
    """PROOF(m, D[n]) of RFC 9162 section 2.1.4.1, as ranges, in the order the RFC lists them."""
    if not 0 < first_size <= second_size:
        raise ValueError(f"no consistency proof from {first_size} to {second_size} leaves")
    proof: list[Range] = []
    start, end, m, whole = 0, second_size, first_size, True
    while m != end - start:
        k = _largest_power_of_two_below(end - start)
        if m <= k:
            proof.append(Range(start + k, end))
            end = start + k
        else:
            proof.append(Range(start, start + k))
            start, m, whole = start + k, m - k, False
    if not whole:
        proof.append(Range(start, end))
    proof.reverse()
    return proof


def range_hashes(ranges: Sequence[Range], stored: Mapping[Node, bytes]) -> list[bytes]:
    """Each range's tree hash, folded from the stored nodes it is made of."""
    return [fold([stored[node] for node in r.nodes()]) for r in ranges]


def nodes_needed(ranges: Iterable[Range]) -> set[Node]:
    return {node for r in ranges for node in r.nodes()}
