"""Builds the Merkle tree for records appended before the log kept one (databases from before migration 0002)."""

from __future__ import annotations

import logging
from typing import Any

import psycopg

from tend_audit.merkle import Frontier
from tend_audit.tree_heads import read_head

log = logging.getLogger(__name__)


def build_missing_tree(conn: psycopg.Connection[Any]) -> int:
    """Adds the tree over existing records if the head has records but no tree yet; returns the records covered."""
    with conn.transaction(), conn.cursor() as cur:
        head = read_head(cur, for_update=True)
        if head.size == 0 or head.frontier:
            return 0
        tree = Frontier()
        nodes: list[tuple[int, int, bytes]] = []
        for (leaf,) in cur.execute("SELECT leaf_hash FROM audit_log ORDER BY seq").fetchall():
            nodes.extend(tree.append(bytes(leaf)))
        if tree.size != head.size:
            raise RuntimeError("the log head and the records disagree; run `tend-audit verify` first")
        with cur.copy("COPY merkle_nodes (level, idx, hash) FROM STDIN") as copy:
            for node in nodes:
                copy.write_row(node)
        cur.execute("UPDATE audit_log_head SET frontier = %s, root_hash = %s WHERE id = 1", (tree.hashes, tree.root()))
    log.info("merkle tree built over existing records", extra={"fields": {"records": tree.size}})
    return tree.size
