"""The questions the data protection officer (and a person about themself) put to the log, as SQL over its columns.

The columns are copies of each record's event bytes, checked against them by `verify`; answers are identifiers only.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg

from tend_audit.access import READ_ALL, READ_PERSON

ACCESSES_TO_PERSON = "accesses_to_person"
ACTIONS_BY_PERSON = "actions_by_person"
REFUSED_ATTEMPTS = "refused_attempts"
BREAK_GLASS_GRANTS = "break_glass_grants"
MODULE_CHANGES = "module_changes"
PERSON_QUERIES = frozenset({ACCESSES_TO_PERSON, ACTIONS_BY_PERSON})
KINDS = frozenset({*PERSON_QUERIES, REFUSED_ATTEMPTS, BREAK_GLASS_GRANTS, MODULE_CHANGES})

BREAK_GLASS_ACTION = "break_glass.grant"
MODULE_ACTION_PREFIX = "module."
# Producers name a person as the subject with either kind.
PERSON_SUBJECT_KINDS = ["person", "student"]

_FILTERS = {
    ACCESSES_TO_PERSON: "subject_kind = ANY(%(subject_kinds)s) AND subject_id = %(person_id)s",
    ACTIONS_BY_PERSON: "actor_kind = 'person' AND actor_id = %(person_id)s",
    REFUSED_ATTEMPTS: "outcome = 'refused'",
    BREAK_GLASS_GRANTS: "action = %(break_glass)s",
    MODULE_CHANGES: "action LIKE %(module_prefix)s",
}

_SELECT = (
    "SELECT seq, event_id, occurred_at, received_at, actor_kind, actor_id, action, subject_kind, subject_id,"
    " purpose, outcome, origin_service, request_id, event_body FROM audit_log"
)


@dataclass(frozen=True)
class RecordQuery:
    """A validated query: its kind, the person it is about (person queries only) and an optional time window."""

    kind: str
    person_id: str = ""
    occurred_from: datetime | None = None
    occurred_until: datetime | None = None

    def required_access(self) -> tuple[str, str, str]:
        """The action and resource (kind, id) identity must allow the asker."""
        if self.kind == ACCESSES_TO_PERSON:
            return READ_PERSON, "person", self.person_id
        return READ_ALL, "audit_log", "*"

    def subject(self) -> tuple[str, str]:
        """What the query itself is recorded as being about."""
        if self.kind in PERSON_QUERIES:
            return "person", self.person_id
        return "audit_log", "*"


@dataclass(frozen=True)
class StoredRecord:
    seq: int
    event_id: str
    occurred_at: datetime
    recorded_at: datetime
    actor_kind: str
    actor_id: str
    action: str
    subject_kind: str
    subject_id: str
    purpose: str
    outcome: str
    origin_service: str
    request_id: str
    event: bytes


def _where(query: RecordQuery, before_seq: int | None) -> tuple[str, dict[str, Any]]:
    clauses = [_FILTERS[query.kind]]
    params: dict[str, Any] = {
        "subject_kinds": PERSON_SUBJECT_KINDS,
        "person_id": query.person_id,
        "break_glass": BREAK_GLASS_ACTION,
        "module_prefix": MODULE_ACTION_PREFIX + "%",
        "occurred_from": query.occurred_from,
        "occurred_until": query.occurred_until,
        "before_seq": before_seq,
    }
    if query.occurred_from is not None:
        clauses.append("occurred_at >= %(occurred_from)s")
    if query.occurred_until is not None:
        clauses.append("occurred_at < %(occurred_until)s")
    if before_seq is not None:
        clauses.append("seq < %(before_seq)s")
    return " WHERE " + " AND ".join(clauses), params


def _record(row: tuple[Any, ...]) -> StoredRecord:
    values = list(row)
    values[0] = int(values[0])
    values[-1] = bytes(values[-1])
    return StoredRecord(*values)


def page(conn: psycopg.Connection[Any], query: RecordQuery, before_seq: int | None, limit: int) -> list[StoredRecord]:
    """Up to `limit` matching records below `before_seq` (all, when None), newest first."""
    where, params = _where(query, before_seq)
    rows = conn.execute(_SELECT + where + " ORDER BY seq DESC LIMIT %(limit)s", {**params, "limit": limit})
    return [_record(row) for row in rows.fetchall()]


def every(conn: psycopg.Connection[Any], query: RecordQuery, batch_size: int = 1000) -> Iterator[StoredRecord]:
    """Every matching record, newest first, read in batches from a server-side cursor."""
    where, params = _where(query, None)
    with conn.cursor(name="audit_export") as cur:
        cur.itersize = batch_size
        cur.execute(_SELECT + where + " ORDER BY seq DESC", params)
        for row in cur:
            yield _record(tuple(row))
