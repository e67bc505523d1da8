"""Access decisions: deny unless a rule grants the action on the resource through a relationship the actor has.

Each rule names the actions and the resource kind it speaks for, and a test of the actor's relationship to the
resource. Rules only ever grant; an action no rule speaks for is refused by the default rule.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from tend_identity.model import Actor, Decision, PersonKind, Resource
from tend_identity.store import Connection
from tend_identity.store import people as people_store

DEFAULT_RULE = "default_deny"


class AccessFacts(Protocol):
    """The relationships the rules ask about."""

    def teaches_or_leads(self, person_id: uuid.UUID, module_run_id: uuid.UUID) -> bool: ...


class StoredFacts:
    """AccessFacts read from identity's database, within the caller's transaction."""

    def __init__(self, conn: Connection) -> None:
        self._conn = conn

    def teaches_or_leads(self, person_id: uuid.UUID, module_run_id: uuid.UUID) -> bool:
        return people_store.teaches_or_leads(self._conn, person_id, module_run_id)


@dataclass(frozen=True)
class Rule:
    name: str
    actions: frozenset[str]
    resource_kind: str
    grants: Callable[[Actor, Resource, AccessFacts], bool]
    allowed_reason: str
    refused_reason: str


def _as_uuid(value: str) -> uuid.UUID | None:
    try:
        return uuid.UUID(value)
    except ValueError:
        return None


def _staff_teaching_the_run(actor: Actor, resource: Resource, facts: AccessFacts) -> bool:
    module_run_id = _as_uuid(resource.id)
    return (
        actor.kind is PersonKind.STAFF
        and module_run_id is not None
        and facts.teaches_or_leads(actor.person_id, module_run_id)
    )


RULES: tuple[Rule, ...] = (
    Rule(
        name="module_run.teaching_staff",
        actions=frozenset({"teaching_session.open", "teaching_session.present"}),
        resource_kind="module_run",
        grants=_staff_teaching_the_run,
        allowed_reason="You teach or lead this module run.",
        refused_reason="Only staff who teach or lead this module run may do this.",
    ),
)


def decide(
    actor: Actor, action: str, resource: Resource, facts: AccessFacts, rules: tuple[Rule, ...] = RULES
) -> Decision:
    """The first rule for the action and resource kind that grants it allows it; if rules speak for it but none
    grants, the first of them refuses it; if none speaks for it, the default rule refuses it."""
    relevant = [rule for rule in rules if action in rule.actions and rule.resource_kind == resource.kind]
    for rule in relevant:
        if rule.grants(actor, resource, facts):
            return Decision(allowed=True, reason=rule.allowed_reason, rule=rule.name)
    if relevant:
        return Decision(allowed=False, reason=relevant[0].refused_reason, rule=relevant[0].name)
    return Decision(allowed=False, reason="No rule allows this action on this resource.", rule=DEFAULT_RULE)
