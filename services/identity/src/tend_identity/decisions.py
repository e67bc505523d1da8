"""Answering an access question: decide, and record the decision for the audit trail in the same transaction, so
no decision is returned without its audit record (it reaches the audit service through the outbox)."""

from __future__ import annotations

import logging
from datetime import UTC, datetime

from tend_common.messaging.outbox import add_to_outbox
from tend_identity import access, audit_events
from tend_identity.facts import StoredFacts
from tend_identity.model import Actor, Decision, Resource
from tend_identity.policy import Purpose
from tend_identity.store import Connection
from tend_identity.store import keys as key_store

log = logging.getLogger(__name__)


def _student_as_person(conn: Connection, resource: Resource) -> Resource:
    """A student named by pseudonym is decided (and audited) by person id; an unknown pseudonym stays as it is and
    is refused, since no relationship reaches it."""
    if resource.kind != "student" or access.as_uuid(resource.id) is not None:
        return resource
    person_id = key_store.person_of_pseudonym(conn, resource.id)
    return resource if person_id is None else Resource("student", str(person_id))


def audit_subject(resource: Resource) -> Resource:
    """Audit records name a student as the person they are, so "who looked at this person" finds every access."""
    if resource.kind == "student" and access.as_uuid(resource.id) is not None:
        return Resource("person", resource.id)
    if resource.kind == "student":
        return Resource("pseudonym", resource.id)
    return resource


def check_access(
    conn: Connection,
    actor: Actor,
    action: str,
    resource: Resource,
    purpose: str,
    request_id: str = "",
    purpose_kind: Purpose | None = None,
    now: datetime | None = None,
) -> Decision:
    moment = now or datetime.now(UTC)
    resolved = _student_as_person(conn, resource)
    decision = access.decide(actor, action, resolved, StoredFacts(conn, moment), purpose_kind)
    recorded_purpose = purpose or (purpose_kind.value if purpose_kind else "")
    # The record and its NOTIFY go to the server together; the caller's commit makes the record before the answer.
    with conn.pipeline(), conn.cursor() as cursor:
        add_to_outbox(
            cursor,
            audit_events.access_decided(actor, action, audit_subject(resolved), recorded_purpose, decision, request_id),
        )
    # Every decision is in the audit trail and counted in the metrics; the log line is for debugging only.
    log.debug(
        "access decided",
        extra={
            "fields": {
                "person_id": str(actor.person_id),
                "action": action,
                "resource_kind": resolved.kind,
                "resource_id": resolved.id,
                "allowed": decision.allowed,
                "rule": decision.rule,
            }
        },
    )
    return decision
