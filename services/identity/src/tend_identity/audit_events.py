"""Audit events identity emits: every access decision, allowed or refused, every disclosure of a student's data and
every privileged change goes to the audit service, through the outbox, in the transaction of the decision."""

from __future__ import annotations

from tend.audit.v1 import events_pb2

from tend_common.messaging.envelope import OutgoingEvent, envelope, new_meta
from tend_identity import SERVICE
from tend_identity.model import Actor, Decision, Resource

ROUTING_KEY = "audit.recorded.v1"


def recorded(
    actor: Actor, action: str, subject: Resource, purpose: str, allowed: bool, request_id: str
) -> OutgoingEvent:
    """One audit record: `actor` did (or was refused) `action` on `subject`, for `purpose`."""
    event = events_pb2.AuditEvent(
        meta=new_meta(SERVICE, request_id=request_id),
        actor=events_pb2.Actor(kind=events_pb2.ACTOR_KIND_PERSON, id=str(actor.person_id)),
        action=action,
        subject=events_pb2.Subject(kind=subject.kind, id=subject.id),
        purpose=purpose,
        outcome=events_pb2.OUTCOME_ALLOWED if allowed else events_pb2.OUTCOME_REFUSED,
        origin_service=SERVICE,
    )
    return envelope(event, ROUTING_KEY)


def access_decided(
    actor: Actor, action: str, resource: Resource, purpose: str, decision: Decision, request_id: str
) -> OutgoingEvent:
    return recorded(actor, action, resource, purpose, decision.allowed, request_id)


def recorded_for_service(
    service: str, action: str, subject: Resource, purpose: str, allowed: bool, request_id: str
) -> OutgoingEvent:
    """One audit record of an action a service took on its own account (no person acting)."""
    event = events_pb2.AuditEvent(
        meta=new_meta(SERVICE, request_id=request_id),
        actor=events_pb2.Actor(kind=events_pb2.ACTOR_KIND_SERVICE, id=service),
        action=action,
        subject=events_pb2.Subject(kind=subject.kind, id=subject.id),
        purpose=purpose,
        outcome=events_pb2.OUTCOME_ALLOWED if allowed else events_pb2.OUTCOME_REFUSED,
        origin_service=SERVICE,
    )
    return envelope(event, ROUTING_KEY)
