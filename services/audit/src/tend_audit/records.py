"""Audit records: reading an AuditEvent from the bus and appending it to the chain."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import psycopg
from google.protobuf.message import DecodeError
from tend.audit.v1 import events_pb2

from tend_audit.chain import chain_hash, leaf_hash
from tend_common.messaging.consumer import Delivery, PoisonMessage
from tend_common.messaging.inbox import claim_event

ROUTING_KEY = "audit.recorded.v1"
CONSUMER_NAME = "audit.records"
SUPPORTED_SCHEMA_VERSIONS = frozenset({1})
Handler = Callable[[Delivery], None]

ACTOR_KINDS = {events_pb2.ACTOR_KIND_PERSON: "person", events_pb2.ACTOR_KIND_SERVICE: "service"}
OUTCOMES = {events_pb2.OUTCOME_ALLOWED: "allowed", events_pb2.OUTCOME_REFUSED: "refused"}


@dataclass(frozen=True)
class AuditRecord:
    """The queryable fields of one audit event, and the event's bytes as received."""

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
    """Reads an AuditEvent's bytes into a record; raises ValueError naming what is wrong."""
    try:
        event = events_pb2.AuditEvent.FromString(body)
    except DecodeError as exc:
        raise ValueError("body is not an AuditEvent message") from exc
    missing = [
        name
        for name, present in (
            ("meta.event_id", event.meta.event_id),
            ("meta.occurred_at", event.meta.HasField("occurred_at")),
            ("actor.id", event.actor.id),
            ("action", event.action),
            ("subject.kind", event.subject.kind),
            ("subject.id", event.subject.id),
            ("origin_service", event.origin_service),
        )
        if not present
    ]
    if missing:
        raise ValueError("missing " + ", ".join(missing))
    if event.actor.kind not in ACTOR_KINDS:
        raise ValueError(f"unknown actor kind {event.actor.kind}")
    if event.outcome not in OUTCOMES:
        raise ValueError(f"unknown outcome {event.outcome}")
    return AuditRecord(
        event_id=event.meta.event_id,
        body=body,
        occurred_at=event.meta.occurred_at.ToDatetime(tzinfo=UTC),
        actor_kind=ACTOR_KINDS[event.actor.kind],
        actor_id=event.actor.id,
        action=event.action,
        subject_kind=event.subject.kind,
        subject_id=event.subject.id,
        purpose=event.purpose,
        outcome=OUTCOMES[event.outcome],
        origin_service=event.origin_service,
        request_id=event.meta.request_id,
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


def append(cursor: psycopg.Cursor[Any], record: AuditRecord) -> int | None:
    """Appends the record to the chain, unless its event was appended before; returns its sequence number."""
    if not claim_event(cursor, CONSUMER_NAME, record.event_id):
        return None
    cursor.execute("SELECT seq, chain_hash FROM audit_log_head WHERE id = 1 FOR UPDATE")
    row = cursor.fetchone()
    assert row is not None, "audit_log_head is created by the first migration"
    previous_seq, previous_hash = row
    seq = int(previous_seq) + 1
    leaf = leaf_hash(record.body)
    chained = chain_hash(bytes(previous_hash), leaf)
    cursor.execute(
        "INSERT INTO audit_log (seq, event_id, event_body, occurred_at, actor_kind, actor_id, action, subject_kind,"
        " subject_id, purpose, outcome, origin_service, request_id, leaf_hash, chain_hash)"
        " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
        (
            seq,
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
        ),
    )
    cursor.execute("UPDATE audit_log_head SET seq = %s, chain_hash = %s WHERE id = 1", (seq, chained))
    return seq
