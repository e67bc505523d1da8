"""Audit events identity emits: every access decision, allowed or refused, goes to the audit service."""

from __future__ import annotations

from tend.audit.v1 import events_pb2

from tend_common.messaging.envelope import OutgoingEvent, envelope, new_meta
from tend_identity import SERVICE
from tend_identity.model import Actor, Decision, Resource

ROUTING_KEY = "audit.recorded.v1"


def access_decided(
    actor: Actor, action: str, resource: Resource, purpose: str, decision: Decision, request_id: str
) -> OutgoingEvent:
    event = events_pb2.AuditEvent(
        meta=new_meta(SERVICE, request_id=request_id),
        actor=events_pb2.Actor(kind=events_pb2.ACTOR_KIND_PERSON, id=str(actor.person_id)),
        action=action,
        subject=events_pb2.Subject(kind=resource.kind, id=resource.id),
        purpose=purpose,
        outcome=events_pb2.OUTCOME_ALLOWED if decision.allowed else events_pb2.OUTCOME_REFUSED,
        origin_service=SERVICE,
    )
    return envelope(event, ROUTING_KEY)
