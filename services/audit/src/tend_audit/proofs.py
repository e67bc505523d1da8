"""Inclusion and consistency proofs (RFC 9162 sections 2.1.3 and 2.1.4), assembled from the stored tree nodes."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import psycopg

from tend_audit.merkle import Node, consistency_ranges, inclusion_ranges, nodes_needed, range_hashes


class ProofUnavailable(Exception):
    """The log does not reach the tree size asked for, or a node the proof needs is missing."""


def stored_hashes(conn: psycopg.Connection[Any], nodes: Iterable[Node]) -> dict[Node, bytes]:
    """The hashes of the given tree nodes: leaves from their records (or, once pruned, from the tree's own table),
    interior nodes from the tree's table."""
    wanted = set(nodes)
    leaves = sorted(node.index for node in wanted if node.level == 0)
    interior = sorted(node for node in wanted if node.level > 0)
    found: dict[Node, bytes] = {}
    if leaves:
        rows = conn.execute(
            "SELECT seq - 1, leaf_hash FROM audit_log WHERE seq = ANY(%s)"
            " UNION ALL SELECT idx, hash FROM merkle_nodes WHERE level = 0 AND idx = ANY(%s)",
            ([index + 1 for index in leaves], leaves),
        ).fetchall()
        found.update({Node(0, int(index)): bytes(value) for index, value in rows})
    if interior:
        rows = conn.execute(
            "SELECT n.level, n.idx, n.hash FROM merkle_nodes n"
            " JOIN unnest(%s::smallint[], %s::bigint[]) AS w(level, idx) ON n.level = w.level AND n.idx = w.idx",
            ([node.level for node in interior], [node.index for node in interior]),
        ).fetchall()
        found.update({Node(int(level), int(index)): bytes(value) for level, index, value in rows})
    missing = wanted - found.keys()
    if missing:
        raise ProofUnavailable(f"{len(missing)} tree nodes are missing, the first {min(missing)}")
    return found


def _log_size(conn: psycopg.Connection[Any]) -> int:
    row = conn.execute("SELECT seq FROM audit_log_head WHERE id = 1").fetchone()
    return int(row[0]) if row else 0


def inclusion_proof(conn: psycopg.Connection[Any], leaf_index: int, tree_size: int) -> list[bytes]:
    """The audit path of leaf `leaf_index` (0-based) in the tree of the first `tree_size` leaves."""
    if tree_size > _log_size(conn):
        raise ProofUnavailable(f"the log has fewer than {tree_size} records")
    if not 0 <= leaf_index < tree_size:
        raise ProofUnavailable(f"leaf {leaf_index} is not in a tree of {tree_size} leaves")
    ranges = inclusion_ranges(leaf_index, tree_size)
    return range_hashes(ranges, stored_hashes(conn, nodes_needed(ranges)))


def consistency_proof(conn: psycopg.Connection[Any], first_size: int, second_size: int) -> list[bytes]:
    """The proof that the tree of `first_size` leaves is a prefix of the tree of `second_size` leaves."""
    if second_size > _log_size(conn):
        raise ProofUnavailable(f"the log has fewer than {second_size} records")
    if not 0 < first_size <= second_size:
        raise ProofUnavailable(f"no consistency proof from {first_size} to {second_size} records")
    ranges = consistency_ranges(first_size, second_size)
    return range_hashes(ranges, stored_hashes(conn, nodes_needed(ranges)))


def leaf_index_of(conn: psycopg.Connection[Any], event_id: str) -> int | None:
    row = conn.execute("SELECT seq FROM audit_log WHERE event_id = %s", (event_id,)).fetchone()
    return int(row[0]) - 1 if row else None
