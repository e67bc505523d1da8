"""Recomputes the audit chain and names the first record that was changed, removed, inserted or reordered."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import psycopg

from tend_audit.chain import GENESIS, chain_hash, leaf_hash
from tend_audit.records import AuditRecord, record_from_body

_COLUMNS = (
    "event_id",
    "occurred_at",
    "actor_kind",
    "actor_id",
    "action",
    "subject_kind",
    "subject_id",
    "purpose",
    "outcome",
    "origin_service",
    "request_id",
)


@dataclass(frozen=True)
class VerificationResult:
    """`ok`, or the first bad record's sequence number and what is wrong with it."""

    ok: bool
    records_checked: int
    first_bad_seq: int | None = None
    problem: str = ""


def verify_chain(conn: psycopg.Connection[Any], batch_size: int = 10_000) -> VerificationResult:
    expected_hash, expected_seq, checked = GENESIS, 1, 0
    with conn.cursor(name="audit_verify") as cur:
        cur.itersize = batch_size
        cur.execute(
            "SELECT seq, event_body, leaf_hash, chain_hash, " + ", ".join(_COLUMNS) + " FROM audit_log ORDER BY seq"
        )
        for row in cur:
            values: tuple[Any, ...] = tuple(row)
            seq, body, stored_leaf, stored_chain, *columns = values
            body = bytes(body)
            if seq != expected_seq:
                problem = "removed" if seq > expected_seq else "inserted"
                return VerificationResult(False, checked, expected_seq, f"record {expected_seq} {problem}")
            leaf = leaf_hash(body)
            if leaf != bytes(stored_leaf):
                return VerificationResult(False, checked, seq, "event body changed")
            try:
                record = record_from_body(body)
            except ValueError as exc:
                return VerificationResult(False, checked, seq, f"event body unreadable: {exc}")
            if _columns_of(record) != tuple(columns):
                return VerificationResult(False, checked, seq, "a column no longer matches the event body")
            expected_hash = chain_hash(expected_hash, leaf)
            if expected_hash != bytes(stored_chain):
                return VerificationResult(False, checked, seq, "chain broken (records reordered or replaced)")
            expected_seq += 1
            checked += 1
    head = conn.execute("SELECT seq, chain_hash FROM audit_log_head WHERE id = 1").fetchone()
    if head is None or head[0] != checked or bytes(head[1]) != expected_hash:
        return VerificationResult(False, checked, checked + 1, "records removed from the end of the log")
    return VerificationResult(True, checked)


def _columns_of(record: AuditRecord) -> tuple[object, ...]:
    return tuple(getattr(record, name) for name in _COLUMNS)
