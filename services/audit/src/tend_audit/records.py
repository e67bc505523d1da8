"""Audit records: reading an AuditEvent from the bus and appending it to the chain."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, NamedTuple

import psycopg
from google.protobuf.message import DecodeError
from tend.audit.v1 import events_pb2

from tend_audit.chain import chain_hash, leaf_hash
from tend_audit.merkle import Frontier
from tend_audit.tree_heads import read_head
from tend_common.messaging.batch_consumer import claim_events
from tend_common.messaging.consumer import Delivery, PoisonMessage

ROUTING_KEY = "audit.recorded.v1"
CONSUMER_NAME = "audit.records"
SUPPORTED_SCHEMA_VERSIONS = frozenset({1})

ACTOR_KINDS = {events_pb2.ACTOR_KIND_PERSON: "person", events_pb2.ACTOR_KIND_SERVICE: "service"}
OUTCOMES = {events_pb2.OUTCOME_ALLOWED: "allowed", events_pb2.OUTCOME_REFUSED: "refused"}
_REQUIRED = ("meta.event_id", "meta.occurred_at", "actor.id", "action", "subject.kind", "subject.id", "origin_service")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


class AuditRecord(NamedTuple):
    """The queryable fields of one audit event, and the event's bytes as received. (A named tuple: one is built for
    every event appended, and it is much cheaper to build than a frozen dataclass.)"""

    event_id: str
    body: bytes
    occurred_at: datetime
    actor_kind: str
    actor_id: str
    action: str
    subject_kind: str
    subject_id: str
    purpose: str
    outcome: str
    origin_service: str
    request_id: str


def record_from_body(body: bytes) -> AuditRecord:
    """Reads an AuditEvent's bytes into a record; raises ValueError naming what is wrong.

    Written for speed (it runs for every event appended): fields are read once, and the time is converted without
    protobuf's pure-Python helpers.
    """
    try:
        event = events_pb2.AuditEvent.FromString(body)
    except DecodeError as exc:
        raise ValueError("body is not an AuditEvent message") from exc
    meta, actor, subject = event.meta, event.actor, event.subject
    values = (meta.event_id, actor.id, event.action, subject.kind, subject.id, event.origin_service)
    if not all(values) or not meta.HasField("occurred_at"):
        present = (values[0], meta.HasField("occurred_at"), *values[1:])
        raise ValueError("missing " + ", ".join(n for n, p in zip(_REQUIRED, present, strict=True) if not p))
    actor_kind = ACTOR_KINDS.get(actor.kind)
    if actor_kind is None:
        raise ValueError(f"unknown actor kind {actor.kind}")
    outcome = OUTCOMES.get(event.outcome)
    if outcome is None:
        raise ValueError(f"unknown outcome {event.outcome}")
    stamp = meta.occurred_at
    try:
        occurred_at = _EPOCH + timedelta(seconds=stamp.seconds, microseconds=stamp.nanos // 1000)
    except OverflowError as exc:
        raise ValueError("meta.occurred_at is out of range") from exc
    return AuditRecord(
        values[0],
        body,
        occurred_at,
        actor_kind,
        values[1],
        values[2],
        values[3],
        values[4],
        event.purpose,
        outcome,
        values[5],
        meta.request_id,
    )


def parse_delivery(delivery: Delivery) -> AuditRecord:
    if delivery.schema_version not in SUPPORTED_SCHEMA_VERSIONS:
        raise PoisonMessage(f"unsupported schema version {delivery.schema_version}")
    try:
        record = record_from_body(delivery.body)
    except ValueError as exc:
        raise PoisonMessage(str(exc)) from exc
    if record.event_id != delivery.event_id:
        raise PoisonMessage("message id and event id differ")
    return record


_LOG_COLUMNS = (
    "seq, event_id, event_body, occurred_at, actor_kind, actor_id, action, subject_kind, subject_id, purpose, outcome,"
    " origin_service, request_id, leaf_hash, chain_hash"
)


def append_batch(cursor: psycopg.Cursor[Any], batch: Sequence[AuditRecord]) -> list[int | None]:
    """Appends, in order, each record whose event was not appended before, in the caller's transaction; returns each
    record's sequence number, or None for one already in the log (or repeated earlier in the batch).

    The head row is locked for the transaction, so records are numbered, chained and added to the tree one batch at
    a time; each completed tree node is stored as it completes.
    """
    claimed = claim_events(cursor, CONSUMER_NAME, [record.event_id for record in batch])
    if not claimed:
        return [None] * len(batch)
    head = read_head(cursor, for_update=True)
    tree = Frontier(head.size, head.frontier)
    chained = head.chain_hash
    log_rows: list[tuple[object, ...]] = []
    node_rows: list[tuple[int, int, bytes]] = []
    seqs: list[int | None] = []
    for record in batch:
        if record.event_id not in claimed:
            seqs.append(None)
            continue
        claimed.discard(record.event_id)
        leaf = leaf_hash(record.body)
        chained = chain_hash(chained, leaf)
        node_rows.extend(tree.append(leaf))
        seqs.append(tree.size)
        log_rows.append(
            (
                tree.size,
                record.event_id,
                record.body,
                record.occurred_at,
                record.actor_kind,
                record.actor_id,
                record.action,
                record.subject_kind,
                record.subject_id,
                record.purpose,
                record.outcome,
                record.origin_service,
                record.request_id,
                leaf,
                chained,
            )
        )
    with cursor.copy(f"COPY audit_log ({_LOG_COLUMNS}) FROM STDIN") as copy:
        for row in log_rows:
            copy.write_row(row)
    if node_rows:
        with cursor.copy("COPY merkle_nodes (level, idx, hash) FROM STDIN") as copy:
            for node in node_rows:
                copy.write_row(node)
    cursor.execute(
        "UPDATE audit_log_head SET seq = %s, chain_hash = %s, frontier = %s, root_hash = %s WHERE id = 1",
        (tree.size, chained, tree.hashes, tree.root()),
    )
    return seqs


def append(cursor: psycopg.Cursor[Any], record: AuditRecord) -> int | None:
    """Appends one record, unless its event was appended before; returns its sequence number."""
    return append_batch(cursor, [record])[0]
