"""Signed tree heads: the log's size and Merkle root at a moment, signed with audit's key.

A head is signed every `every_records` records or, when fewer arrived, every `every_seconds` seconds, and on demand.
Anyone who keeps a signed head can later ask for a consistency proof and so detect a log rewritten since.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg

from tend_audit.signing import SigningKey, signing_time, tree_head_message


@dataclass(frozen=True)
class LogHead:
    """The log as last appended: size, chain hash, Merkle frontier and root."""

    size: int
    chain_hash: bytes
    frontier: list[bytes]
    root_hash: bytes


@dataclass(frozen=True)
class SignedTreeHead:
    tree_size: int
    root_hash: bytes
    signed_at: datetime
    key_id: str
    signature: bytes


def read_head(cursor: psycopg.Cursor[Any], for_update: bool = False) -> LogHead:
    cursor.execute(
        "SELECT seq, chain_hash, frontier, root_hash FROM audit_log_head WHERE id = 1"
        + (" FOR UPDATE" if for_update else "")
    )
    row = cursor.fetchone()
    assert row is not None, "audit_log_head is created by the first migration"
    seq, chain, frontier, root = row
    return LogHead(int(seq), bytes(chain), [bytes(h) for h in frontier], bytes(root))


def latest(conn: psycopg.Connection[Any]) -> SignedTreeHead | None:
    row = conn.execute(
        "SELECT tree_size, root_hash, signed_at, key_id, signature FROM signed_tree_heads"
        " ORDER BY tree_size DESC LIMIT 1"
    ).fetchone()
    return _head(row) if row else None


def at_size(conn: psycopg.Connection[Any], tree_size: int) -> SignedTreeHead | None:
    row = conn.execute(
        "SELECT tree_size, root_hash, signed_at, key_id, signature FROM signed_tree_heads WHERE tree_size = %s",
        (tree_size,),
    ).fetchone()
    return _head(row) if row else None


def _head(row: tuple[Any, ...]) -> SignedTreeHead:
    size, root, signed_at, key_id, signature = row
    return SignedTreeHead(int(size), bytes(root), signed_at, str(key_id), bytes(signature))


def sign_current(conn: psycopg.Connection[Any], key: SigningKey, now: datetime | None = None) -> SignedTreeHead | None:
    """Signs the log's current head, unless it is empty; a head already signed at that size is returned as is."""
    with conn.transaction(), conn.cursor() as cur:
        head = read_head(cur)
        if head.size == 0:
            return None
        signed_at = signing_time(now or datetime.now(UTC))
        signature = key.sign(tree_head_message(head.size, head.root_hash, signed_at))
        cur.execute(
            "INSERT INTO signed_tree_heads (tree_size, root_hash, signed_at, key_id, signature)"
            " VALUES (%s, %s, %s, %s, %s) ON CONFLICT (tree_size) DO NOTHING",
            (head.size, head.root_hash, signed_at, key.key_id, signature),
        )
    return at_size(conn, head.size)


def sign_if_due(
    conn: psycopg.Connection[Any],
    key: SigningKey,
    every_records: int,
    every_seconds: float,
    now: datetime | None = None,
) -> SignedTreeHead | None:
    """Signs the current head when `every_records` records arrived since the last signed head, or when any did and
    the last is `every_seconds` old; returns the new head, or None when none was due."""
    moment = now or datetime.now(UTC)
    with conn.transaction():
        row = conn.execute(
            "SELECT h.seq, s.tree_size, s.signed_at FROM audit_log_head h"
            " LEFT JOIN LATERAL (SELECT tree_size, signed_at FROM signed_tree_heads ORDER BY tree_size DESC LIMIT 1) s"
            " ON true WHERE h.id = 1"
        ).fetchone()
    assert row is not None
    size, signed_size, signed_at = int(row[0]), int(row[1] or 0), row[2]
    unsigned = size - signed_size
    if unsigned <= 0:
        return None
    stale = signed_at is None or moment - signed_at >= timedelta(seconds=every_seconds)
    if unsigned >= every_records or stale:
        return sign_current(conn, key, moment)
    return None
