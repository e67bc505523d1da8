"""Answering an access question: decide, and record the decision for the audit trail in the same transaction, so
no decision is returned without its audit record (it reaches the audit service through the outbox)."""

from __future__ import annotations

import logging

from tend_common.messaging.outbox import add_to_outbox
from tend_identity import access, audit_events
from tend_identity.model import Actor, Decision, Resource
from tend_identity.store import Connection

log = logging.getLogger(__name__)


def check_access(
    conn: Connection, actor: Actor, action: str, resource: Resource, purpose: str, request_id: str = ""
) -> Decision:
    decision = access.decide(actor, action, resource, access.StoredFacts(conn))
    with conn.cursor() as cursor:
        add_to_outbox(cursor, audit_events.access_decided(actor, action, resource, purpose, decision, request_id))
    log.info(
        "access decided",
        extra={
            "fields": {
                "person_id": str(actor.person_id),
                "action": action,
                "resource_kind": resource.kind,
                "resource_id": resource.id,
                "allowed": decision.allowed,
                "rule": decision.rule,
            }
        },
    )
    return decision
