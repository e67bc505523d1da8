"""Access decisions: deny unless the policy (policy.py) grants the action through a relationship the actor holds to
the resource.

The decision is pure: the relationships come from an AccessFacts, which the service backs with its database and
tests back with memory. Only staff hold relationships to other people's data; a student holds only "self".
"""

from __future__ import annotations

import uuid
from typing import Protocol

from tend_identity import policy
from tend_identity.model import Actor, Decision, PersonKind, Resource
from tend_identity.policy import Purpose

DEFAULT_RULE = "default_deny"
# Resources that are one of a kind and need no id to be told apart.
SINGLETON_KINDS = frozenset({"audit_log"})
# Relationships ordered as the policy lists them, so that the rule named for an allowed decision is always the same
# one (and break-glass, listed last, only when nothing else grants).
_ORDER = {relationship.name: index for index, relationship in enumerate(policy.RELATIONSHIPS)}


class AccessFacts(Protocol):
    """Which of `candidates` the actor holds to the resource (kind and id)."""

    def relationships_to(
        self, actor: Actor, kind: str, resource_id: uuid.UUID | None, candidates: frozenset[str]
    ) -> frozenset[str]: ...


def as_uuid(value: str) -> uuid.UUID | None:
    try:
        return uuid.UUID(value)
    except ValueError:
        return None


def usable_relationships(actor: Actor, candidates: frozenset[str]) -> frozenset[str]:
    """A student acts only as themself; staff never through "self" towards a student."""
    if actor.kind is PersonKind.STUDENT:
        return candidates & {policy.SELF}
    return candidates


def decide(
    actor: Actor, action: str, resource: Resource, facts: AccessFacts, purpose: Purpose | None = None
) -> Decision:
    if action == policy.STUDENT_VIEW and resource.kind == "student":
        return _decide_student_view(actor, resource, facts, purpose)
    rules = policy.action_rules(action, resource.kind)
    if not rules:
        return Decision(allowed=False, reason="No rule allows this action on this resource.", rule=DEFAULT_RULE)
    resource_id = None if resource.kind in SINGLETON_KINDS else as_uuid(resource.id)
    granting = frozenset().union(*(rule.relationships for rule in rules))
    held = frozenset[str]()
    if resource_id is not None or resource.kind in SINGLETON_KINDS:
        held = facts.relationships_to(actor, resource.kind, resource_id, usable_relationships(actor, granting))
    for rule in rules:
        if held & rule.relationships:
            return Decision(allowed=True, reason=rule.allowed_reason, rule=rule.name)
    return Decision(allowed=False, reason=rules[0].refused_reason, rule=rules[0].name)


def _decide_student_view(actor: Actor, resource: Resource, facts: AccessFacts, purpose: Purpose | None) -> Decision:
    rule = policy.STUDENT_VIEW
    if purpose is None:
        return Decision(allowed=False, reason="Say what the student's records are needed for.", rule=rule)
    student_id = as_uuid(resource.id)
    granting = usable_relationships(actor, policy.student_view_relationships(purpose))
    held = frozenset[str]() if student_id is None else facts.relationships_to(actor, "student", student_id, granting)
    if not held:
        return Decision(
            allowed=False,
            reason=f"Nothing gives you this student's records for {purpose.value}.",
            rule=rule,
        )
    first = min(held, key=_ORDER.__getitem__)
    return Decision(allowed=True, reason=policy.RELATIONSHIPS_BY_NAME[first].reason, rule=f"{rule}.{first}")
