"""Audit's record of its own answers: each query or export, allowed or refused, is appended to the log and committed
before it is answered, like any other read of personal data."""

from __future__ import annotations

from psycopg_pool import ConnectionPool
from tend.audit.v1 import events_pb2

from tend_audit import records
from tend_common.messaging.envelope import envelope, new_meta

SERVICE = "audit"


def record_query(
    pool: ConnectionPool,
    actor_person_id: str,
    action: str,
    subject: tuple[str, str],
    purpose: str,
    allowed: bool,
    request_id: str,
) -> int:
    """Appends the record and commits it; returns its sequence number. Raises if it cannot be made."""
    event = events_pb2.AuditEvent(
        meta=new_meta(SERVICE, request_id=request_id),
        actor=events_pb2.Actor(kind=events_pb2.ACTOR_KIND_PERSON, id=actor_person_id),
        action=action,
        subject=events_pb2.Subject(kind=subject[0], id=subject[1]),
        purpose=purpose,
        outcome=events_pb2.OUTCOME_ALLOWED if allowed else events_pb2.OUTCOME_REFUSED,
        origin_service=SERVICE,
    )
    record = records.record_from_body(envelope(event, records.ROUTING_KEY).body)
    with pool.connection() as conn, conn.transaction(), conn.cursor() as cur:
        seq = records.append(cur, record)
    assert seq is not None, "a new event id is never in the log already"
    return seq
