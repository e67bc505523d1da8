"""AccessFacts read from identity's database: inside the caller's transaction (StoredFacts), or through the facts
cache with a short read of their own on a miss (CachedFacts, for CheckAccess)."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import datetime
from typing import TypeVar

from psycopg_pool import ConnectionPool

from tend_identity import policy
from tend_identity.facts_cache import FactsCache
from tend_identity.model import Actor
from tend_identity.store import Connection, relations
from tend_identity.store import keys as key_store

_Value = TypeVar("_Value")


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

    def person_of_pseudonym(self, pseudonym: str) -> uuid.UUID | None:
        return key_store.person_of_pseudonym(self._conn, pseudonym)

    def break_glass_grants(self, actor: Actor) -> tuple[tuple[uuid.UUID, datetime, datetime], ...]:
        return relations.break_glass_grants(self._conn, actor.person_id, self._now)


class CachedFacts:
    """The same facts as StoredFacts, from the cache. Every relationship but break-glass is timeless (it holds until
    the data changes, which drops the cache), so it is cached as read; break-glass depends on the time, so the
    person's unexpired grants are cached instead and checked against `now` on every decision."""

    def __init__(self, cache: FactsCache, pool: ConnectionPool, now: datetime) -> None:
        self._cache = cache
        self._pool = pool
        self._now = now

    def _read(self, query: Callable[[StoredFacts], _Value]) -> Callable[[], _Value]:
        def read() -> _Value:
            with self._pool.connection() as conn:
                return query(StoredFacts(conn, self._now))

        return read

    def relationships_to(
        self, actor: Actor, kind: str, resource_id: uuid.UUID | None, candidates: frozenset[str]
    ) -> frozenset[str]:
        timeless = candidates - {policy.BREAK_GLASS}
        held = frozenset[str]()
        if timeless:
            held = self._cache.get(
                ("relationships", actor.person_id, kind, resource_id, timeless),
                self._read(lambda facts: facts.relationships_to(actor, kind, resource_id, timeless)),
            )
        if policy.BREAK_GLASS in candidates and kind == "student" and resource_id is not None:
            grants = self._cache.get(
                ("break_glass", actor.person_id),
                self._read(lambda facts: facts.break_glass_grants(actor)),
            )
            if any(student == resource_id and granted <= self._now < expires for student, granted, expires in grants):
                held |= {policy.BREAK_GLASS}
        return held

    def person_of_pseudonym(self, pseudonym: str) -> uuid.UUID | None:
        # Only a known pseudonym is kept: an unknown one may be recorded at any moment, without a notification.
        return self._cache.get(
            ("pseudonym", pseudonym),
            self._read(lambda facts: facts.person_of_pseudonym(pseudonym)),
            keep=lambda person_id: person_id is not None,
        )
