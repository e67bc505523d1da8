"""Answering an access question: decide, and record the decision for the audit trail before answering, so no
decision is returned without its committed audit record (it reaches the audit service through the outbox)."""

from __future__ import annotations

import logging
import uuid
from datetime import UTC, datetime
from typing import Protocol

from tend_common.messaging.envelope import OutgoingEvent
from tend_common.messaging.outbox import add_to_outbox
from tend_identity import access, audit_events
from tend_identity.audit_writer import AuditWriter
from tend_identity.facts import StoredFacts
from tend_identity.model import Actor, Decision, Resource
from tend_identity.policy import Purpose
from tend_identity.store import Connection

log = logging.getLogger(__name__)


class DecisionFacts(access.AccessFacts, Protocol):
    """The facts of a decision, and the person a pseudonym names (None if unknown)."""

    def person_of_pseudonym(self, pseudonym: str) -> uuid.UUID | None: ...


def _student_as_person(facts: DecisionFacts, resource: Resource) -> Resource:
    """A student named by pseudonym is decided (and audited) by person id; an unknown pseudonym stays as it is and
    is refused, since no relationship reaches it."""
    if resource.kind != "student" or access.as_uuid(resource.id) is not None:
        return resource
    person_id = facts.person_of_pseudonym(resource.id)
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
    """Decides inside the caller's transaction and adds the audit record to it: for decisions that go with a change
    (module management, break-glass), which the same commit makes."""
    resolved, decision = _decide(StoredFacts(conn, now or datetime.now(UTC)), actor, action, resource, purpose_kind)
    # The record and its NOTIFY go to the server together; the caller's commit makes the record before the answer.
    with conn.pipeline(), conn.cursor() as cursor:
        add_to_outbox(cursor, _audit_event(actor, action, resolved, purpose, purpose_kind, decision, request_id))
    return decision


def answer_access_question(
    facts: DecisionFacts,
    writer: AuditWriter,
    actor: Actor,
    action: str,
    resource: Resource,
    purpose: str,
    request_id: str = "",
    purpose_kind: Purpose | None = None,
) -> Decision:
    """Decides a question asked on its own (CheckAccess) and returns once the audit record is committed by the
    writer's group commit; raises AuditNotRecorded, and so gives no answer, if it was not."""
    resolved, decision = _decide(facts, actor, action, resource, purpose_kind)
    writer.record(_audit_event(actor, action, resolved, purpose, purpose_kind, decision, request_id))
    return decision


def _decide(
    facts: DecisionFacts, actor: Actor, action: str, resource: Resource, purpose_kind: Purpose | None
) -> tuple[Resource, Decision]:
    resolved = _student_as_person(facts, resource)
    decision = access.decide(actor, action, resolved, facts, purpose_kind)
    # Every decision is in the audit trail and counted in the metrics; the log line is for debugging only, and not
    # built at all otherwise (this is the busiest path in identity).
    if log.isEnabledFor(logging.DEBUG):
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
    return resolved, decision


def _audit_event(
    actor: Actor,
    action: str,
    resolved: Resource,
    purpose: str,
    purpose_kind: Purpose | None,
    decision: Decision,
    request_id: str,
) -> OutgoingEvent:
    recorded_purpose = purpose or (purpose_kind.value if purpose_kind else "")
    return audit_events.access_decided(actor, action, audit_subject(resolved), recorded_purpose, decision, request_id)
