"""Building audit events and appending them straight to a test database, without the broker."""

from __future__ import annotations

from datetime import datetime

import psycopg
from tend.audit.v1 import events_pb2

from tend_audit import records
from tend_common.messaging.consumer import Delivery
from tend_common.messaging.envelope import envelope, new_meta


def audit_event(
    action: str = "student.view",
    actor_id: str = "staff-1",
    subject: tuple[str, str] = ("person", "student-1"),
    purpose: str = "engagement support",
    allowed: bool = True,
    occurred_at: datetime | None = None,
    schema_version: int = 1,
) -> Delivery:
    message = events_pb2.AuditEvent(
        meta=new_meta("tests", schema_version=schema_version, occurred_at=occurred_at),
        actor=events_pb2.Actor(kind=events_pb2.ACTOR_KIND_PERSON, id=actor_id),
        action=action,
        subject=events_pb2.Subject(kind=subject[0], id=subject[1]),
        purpose=purpose,
        outcome=events_pb2.OUTCOME_ALLOWED if allowed else events_pb2.OUTCOME_REFUSED,
        origin_service="tests",
    )
    event = envelope(message, records.ROUTING_KEY)
    return Delivery(event.routing_key, event.event_id, event.type_name, schema_version, event.body, False)


def append(dsn: str, deliveries: list[Delivery]) -> list[int | None]:
    """Appends the deliveries in one batch, as the consumer does."""
    with psycopg.connect(dsn) as conn, conn.cursor() as cur:
        return records.append_batch(cur, [records.parse_delivery(d) for d in deliveries])


def append_many(dsn: str, count: int, action: str = "student.view") -> None:
    append(dsn, [audit_event(action=f"{action}.{n}") for n in range(count)])
