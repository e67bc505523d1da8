"""What a service calls to put an access to personal data, or a privileged change, on the audit record.

Two ways, one per kind of access:
- a change: `record_in_outbox(cursor, ...)` inside the transaction that makes the change, so the record exists if and
  only if the change does; the service's outbox relay delivers it to the audit service with publisher confirms.
- a read of personal data: `audited_read(pool, ..., read=...)` commits the record (to the outbox, in its own
  transaction) before it reads, and raises AuditRecordFailed without reading if the record cannot be committed:
  no audit record, no data.
Records carry identifiers only (person ids, pseudonyms, module ids, service names), never names or e-mails.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal, TypeVar

import psycopg
from psycopg_pool import ConnectionPool
from tend.audit.v1 import events_pb2

from tend_common.messaging.envelope import OutgoingEvent, envelope, new_meta
from tend_common.messaging.outbox import add_to_outbox

ROUTING_KEY = "audit.recorded.v1"
MAX_FIELD_LENGTH = 500

Outcome = Literal["allowed", "refused"]
T = TypeVar("T")

_ACTOR_KINDS = {"person": events_pb2.ACTOR_KIND_PERSON, "service": events_pb2.ACTOR_KIND_SERVICE}
_OUTCOMES = {"allowed": events_pb2.OUTCOME_ALLOWED, "refused": events_pb2.OUTCOME_REFUSED}


class AuditRecordFailed(Exception):
    """The audit record of a read could not be committed, so the read did not happen."""


@dataclass(frozen=True)
class Actor:
    """Who acted: a person (by identity's person id) or a service acting on its own account."""

    kind: Literal["person", "service"]
    id: str

    @classmethod
    def person(cls, person_id: str) -> Actor:
        return cls("person", person_id)

    @classmethod
    def service(cls, name: str) -> Actor:
        return cls("service", name)


@dataclass(frozen=True)
class Subject:
    """What the action was about, for example ("person", person id), ("pseudonym", p), ("module", id)."""

    kind: str
    id: str


def audit_event(
    actor: Actor,
    action: str,
    subject: Subject,
    purpose: str,
    outcome: Outcome,
    origin_service: str,
    request_id: str = "",
    occurred_at: datetime | None = None,
) -> OutgoingEvent:
    """The AuditEvent, ready to publish or to put in an outbox; raises ValueError naming a missing or bad field."""
    fields = {
        "actor.id": actor.id,
        "action": action,
        "subject.kind": subject.kind,
        "subject.id": subject.id,
        "origin_service": origin_service,
    }
    missing = [name for name, value in fields.items() if not value]
    if missing:
        raise ValueError("audit record is missing " + ", ".join(missing))
    too_long = [name for name, value in {**fields, "purpose": purpose}.items() if len(value) > MAX_FIELD_LENGTH]
    if too_long:
        raise ValueError(f"audit record fields longer than {MAX_FIELD_LENGTH} characters: " + ", ".join(too_long))
    if actor.kind not in _ACTOR_KINDS:
        raise ValueError(f"audit record actor kind must be person or service, not {actor.kind!r}")
    if outcome not in _OUTCOMES:
        raise ValueError(f"audit record outcome must be allowed or refused, not {outcome!r}")
    message = events_pb2.AuditEvent(
        meta=new_meta(origin_service, request_id=request_id, occurred_at=occurred_at),
        actor=events_pb2.Actor(kind=_ACTOR_KINDS[actor.kind], id=actor.id),
        action=action,
        subject=events_pb2.Subject(kind=subject.kind, id=subject.id),
        purpose=purpose,
        outcome=_OUTCOMES[outcome],
        origin_service=origin_service,
    )
    return envelope(message, ROUTING_KEY)


def record_in_outbox(
    cursor: psycopg.Cursor[Any],
    actor: Actor,
    action: str,
    subject: Subject,
    purpose: str,
    outcome: Outcome,
    origin_service: str,
    request_id: str,
) -> str:
    """Adds the record to the caller's outbox, in the caller's transaction; returns its event id."""
    event = audit_event(actor, action, subject, purpose, outcome, origin_service, request_id)
    add_to_outbox(cursor, event)
    return event.event_id


def audited_read(
    pool: ConnectionPool,
    actor: Actor,
    action: str,
    subject: Subject,
    purpose: str,
    origin_service: str,
    request_id: str,
    read: Callable[[], T],
) -> T:
    """Commits the record of a read of personal data, then reads and returns what `read` returns.

    If the record cannot be committed (database unreachable, read-only, outbox unwritable), raises AuditRecordFailed
    and `read` is never called. The record is made first, so a read that then fails is recorded too: an access
    recorded that did not happen is harmless, one that happened unrecorded is not.
    """
    event = audit_event(actor, action, subject, purpose, "allowed", origin_service, request_id)
    try:
        with pool.connection() as conn, conn.transaction(), conn.cursor() as cursor:
            add_to_outbox(cursor, event)
    except psycopg.Error as exc:
        raise AuditRecordFailed(f"the audit record of {action} could not be committed") from exc
    return read()
