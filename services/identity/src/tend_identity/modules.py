"""Module management, decided by the policy: only a module's leads and its school's administrators change it; only
the school's administrators create, delete (withdraw) or restore one. Each change is made in the transaction of
its audited decision, so the audit record and the change stand or fall together. The list of modules a person may
manage, and what they may do to each, is read from the same rules, so a page built from it offers only what a
change would allow."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from tend_identity import decisions, policy
from tend_identity.model import Actor, ModuleRunSummary, NotFoundError, PersonKind, Refused, Resource
from tend_identity.store import Connection
from tend_identity.store import organisation as org_store
from tend_identity.store.organisation import StoredModule, StoredSchool

CREATE_ACTION = "module.create"
UPDATE_ACTION = "module.update"
DELETE_ACTION = "module.delete"
RESTORE_ACTION = "module.restore"


class ModuleChangeRefused(Refused):
    """The policy refused the change."""


class ModuleCodeTaken(Refused):
    """Another module has this code."""


def _decide(conn: Connection, actor: Actor, action: str, resource: Resource, now: datetime, request_id: str) -> None:
    decision = decisions.check_access(conn, actor, action, resource, "module management", request_id, now=now)
    if not decision.allowed:
        raise ModuleChangeRefused(decision.reason)


def _existing(conn: Connection, module_id: uuid.UUID) -> StoredModule:
    found = org_store.module(conn, module_id)
    if found is None:
        raise NotFoundError("There is no such module.")
    return found


def create_module(
    conn: Connection, actor: Actor, school_id: uuid.UUID, code: str, title: str, now: datetime, request_id: str = ""
) -> StoredModule:
    _decide(conn, actor, CREATE_ACTION, Resource("school", str(school_id)), now, request_id)
    if not org_store.school_exists(conn, school_id):
        raise NotFoundError("There is no such school.")
    if org_store.module_code_taken(conn, code):
        raise ModuleCodeTaken("Another module already has this code.")
    module_id = uuid.uuid4()
    org_store.upsert_module(conn, module_id, school_id, code, title)
    return _existing(conn, module_id)


def update_module(
    conn: Connection, actor: Actor, module_id: uuid.UUID, title: str, now: datetime, request_id: str = ""
) -> StoredModule:
    _decide(conn, actor, UPDATE_ACTION, Resource("module", str(module_id)), now, request_id)
    _existing(conn, module_id)
    org_store.set_module_title(conn, module_id, title)
    return _existing(conn, module_id)


def delete_module(
    conn: Connection, actor: Actor, module_id: uuid.UUID, now: datetime, request_id: str = ""
) -> StoredModule:
    _decide(conn, actor, DELETE_ACTION, Resource("module", str(module_id)), now, request_id)
    _existing(conn, module_id)
    org_store.withdraw_module(conn, module_id)
    return _existing(conn, module_id)


def restore_module(
    conn: Connection, actor: Actor, module_id: uuid.UUID, now: datetime, request_id: str = ""
) -> StoredModule:
    _decide(conn, actor, RESTORE_ACTION, Resource("module", str(module_id)), now, request_id)
    _existing(conn, module_id)
    org_store.restore_module(conn, module_id)
    return _existing(conn, module_id)


@dataclass(frozen=True)
class ManageableModule:
    """A module a person may manage, its runs, and the module-management actions the policy allows them on it."""

    module: StoredModule
    school: StoredSchool
    runs: list[ModuleRunSummary]
    allowed_actions: tuple[str, ...]


@dataclass(frozen=True)
class ManageableModules:
    modules: list[ManageableModule]
    # Where the person may create modules.
    schools_for_new_modules: list[StoredSchool]


def _allowed(resource_kind: str, held: frozenset[str]) -> list[str]:
    return [rule.action for rule in policy.ACTIONS if rule.resource_kind == resource_kind and held & rule.relationships]


def _actions_now(held: frozenset[str], withdrawn: bool) -> tuple[str, ...]:
    """The module actions the relationships allow, less the one of delete and restore that does not apply."""
    not_applicable = DELETE_ACTION if withdrawn else RESTORE_ACTION
    return tuple(action for action in _allowed("module", held) if action != not_applicable)


def manageable_modules(conn: Connection, actor: Actor) -> ManageableModules:
    """Every module on which the policy's module rules allow the person something now, with exactly those actions.
    A withdrawn module is listed only to those who may restore it. Students manage nothing."""
    if actor.kind is not PersonKind.STAFF:
        return ManageableModules([], [])
    listed: list[tuple[org_store.ModuleWithRelationships, tuple[str, ...]]] = []
    for candidate in org_store.modules_related_to(conn, actor.person_id):
        actions = _actions_now(candidate.relationships, candidate.module.deleted)
        if actions and (RESTORE_ACTION in actions or not candidate.module.deleted):
            listed.append((candidate, actions))
    runs = org_store.runs_of_modules(conn, [candidate.module.id for candidate, _ in listed])
    modules = [
        ManageableModule(
            candidate.module,
            candidate.school,
            [
                ModuleRunSummary(run_id, candidate.module.code, candidate.module.title, year, term)
                for run_id, year, term in runs.get(candidate.module.id, [])
            ],
            actions,
        )
        for candidate, actions in listed
    ]
    schools = org_store.schools_with_roles(conn, actor.person_id)
    creatable = [school for school, roles in schools if CREATE_ACTION in _allowed("school", roles)]
    return ManageableModules(modules, creatable)
