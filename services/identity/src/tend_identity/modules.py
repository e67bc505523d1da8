"""Module management, decided by the policy: only a module's leads and its school's administrators change it; only
the school's administrators create, delete (withdraw) or restore one. Each change is made in the transaction of
its audited decision, so the audit record and the change stand or fall together."""

from __future__ import annotations

import uuid
from datetime import datetime

from tend_identity import decisions
from tend_identity.model import Actor, NotFoundError, Refused, Resource
from tend_identity.store import Connection
from tend_identity.store import organisation as org_store
from tend_identity.store.organisation import StoredModule


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
    _decide(conn, actor, "module.create", Resource("school", str(school_id)), now, request_id)
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
    _decide(conn, actor, "module.update", Resource("module", str(module_id)), now, request_id)
    _existing(conn, module_id)
    org_store.set_module_title(conn, module_id, title)
    return _existing(conn, module_id)


def delete_module(
    conn: Connection, actor: Actor, module_id: uuid.UUID, now: datetime, request_id: str = ""
) -> StoredModule:
    _decide(conn, actor, "module.delete", Resource("module", str(module_id)), now, request_id)
    _existing(conn, module_id)
    org_store.withdraw_module(conn, module_id)
    return _existing(conn, module_id)


def restore_module(
    conn: Connection, actor: Actor, module_id: uuid.UUID, now: datetime, request_id: str = ""
) -> StoredModule:
    _decide(conn, actor, "module.restore", Resource("module", str(module_id)), now, request_id)
    _existing(conn, module_id)
    org_store.restore_module(conn, module_id)
    return _existing(conn, module_id)
