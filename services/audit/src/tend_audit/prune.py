"""Retention: removes the records older than the retention period and leaves a signed checkpoint in their place.

Pruning removes a prefix of the log, records 1..P, where P is the last record before the first one still within the
retention period (a record that arrived late keeps the ones after it a little longer, never the other way round).
The checkpoint holds the tree head over records 1..P, the chain hash at P and the tree's frontier at P, signed, so
verification starts from it; the pruned records' leaf hashes (hashes only, nothing personal) stay in the tree table
so proofs over older signed heads can still be served. The log is verified before anything is removed: pruning must
never launder a tampered record into a signed checkpoint.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import psycopg

from tend_audit import records
from tend_audit.merkle import fold, frontier_nodes
from tend_audit.proofs import stored_hashes
from tend_audit.signing import SigningKey, checkpoint_message, signing_time
from tend_audit.tree_heads import read_head
from tend_audit.verify import verify_log

log = logging.getLogger(__name__)


class PruneRefused(Exception):
    """The log does not verify, so nothing is pruned."""


@dataclass(frozen=True)
class PruneResult:
    pruned: int
    # Records 1..checkpoint_size are now covered by the checkpoint (None when nothing was due).
    checkpoint_size: int | None


def retention_cutoff(now: datetime, years: int) -> datetime:
    """The moment `years` calendar years before `now` (29 February falls back to the 28th)."""
    try:
        return now.replace(year=now.year - years)
    except ValueError:
        return now.replace(year=now.year - years, day=28)


def prune(conn: psycopg.Connection[Any], key: SigningKey, cutoff: datetime, now: datetime | None = None) -> PruneResult:
    verified = verify_log(conn)
    if not verified.ok:
        where = f" at record {verified.first_bad_seq}" if verified.first_bad_seq else ""
        raise PruneRefused(f"the log does not verify{where}: {verified.problem}")
    with conn.transaction(), conn.cursor() as cur:
        head = read_head(cur, for_update=True)  # no appends while the prefix is cut
        row = cur.execute(
            "SELECT (SELECT coalesce(max(tree_size), 0) FROM audit_checkpoints),"
            " (SELECT min(seq) FROM audit_log WHERE occurred_at >= %s)",
            (cutoff,),
        ).fetchone()
        assert row is not None
        start = int(row[0])
        end = head.size if row[1] is None else int(row[1]) - 1
        if end <= start:
            return PruneResult(0, None)
        nodes = frontier_nodes(end)
        stored = stored_hashes(conn, nodes)
        frontier = [stored[node] for node in nodes]
        chain_row = cur.execute("SELECT chain_hash FROM audit_log WHERE seq = %s", (end,)).fetchone()
        assert chain_row is not None, "verification found every record up to the head"
        chained, root = bytes(chain_row[0]), fold(frontier)
        signed_at = signing_time(now or datetime.now(UTC))
        signature = key.sign(checkpoint_message(end, root, chained, frontier, signed_at))
        cur.execute(
            "INSERT INTO audit_checkpoints (tree_size, root_hash, chain_hash, frontier, pruned_before, signed_at,"
            " key_id, signature) VALUES (%s, %s, %s, %s, %s, %s, %s, %s)",
            (end, root, chained, frontier, cutoff, signed_at, key.key_id, signature),
        )
        cur.execute(
            "INSERT INTO merkle_nodes (level, idx, hash) SELECT 0, seq - 1, leaf_hash FROM audit_log WHERE seq <= %s",
            (end,),
        )
        # Event ids this old are never delivered again; keeping them would only grow the inbox for ever.
        cur.execute(
            "DELETE FROM inbox_processed_events WHERE consumer = %s"
            " AND event_id IN (SELECT event_id FROM audit_log WHERE seq <= %s)",
            (records.CONSUMER_NAME, end),
        )
        cur.execute("DELETE FROM audit_log WHERE seq <= %s", (end,))
        pruned = cur.rowcount
    log.info("audit log pruned", extra={"fields": {"pruned": pruned, "checkpoint_size": end}})
    return PruneResult(pruned, end)
