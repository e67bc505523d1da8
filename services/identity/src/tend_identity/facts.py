"""AccessFacts read from identity's database, inside the caller's transaction."""

from __future__ import annotations

import uuid
from datetime import datetime

from tend_identity import policy
from tend_identity.model import Actor
from tend_identity.store import Connection, relations


class StoredFacts:
    def __init__(self, conn: Connection, now: datetime) -> None:
        self._conn = conn
        self._now = now

    def relationships_to(
        self, actor: Actor, kind: str, resource_id: uuid.UUID | None, candidates: frozenset[str]
    ) -> frozenset[str]:
        if not candidates:
            return frozenset()
        conn, person_id = self._conn, actor.person_id
        if kind == "audit_log":
            return relations.institution_roles(conn, person_id) & candidates
        if resource_id is None:
            return frozenset()
        if kind == "student":
            return relations.relationships_to_student(conn, person_id, resource_id, candidates, self._now)
        if kind == "module_run":
            return relations.relationships_to_module_run(conn, person_id, resource_id) & candidates
        if kind == "module":
            return relations.relationships_to_module(conn, person_id, resource_id) & candidates
        if kind == "school":
            return relations.relationships_to_school(conn, person_id, resource_id) & candidates
        if kind == "person":
            own = {policy.SELF} if person_id == resource_id else set()
            return (relations.institution_roles(conn, person_id) | own) & candidates
        return frozenset()
