"""Reading one xAPI statement back (xAPI-Communication.md 2.1.3, the single-statement form), for the source that
sent it.

Indicators never kept the statement as sent (xapi.py), so it is rebuilt from what was kept: its id, verb id, time,
the object's type and id (an Activity's id, or the statement a StatementRef points to), when it was stored and by
which source. The actor appears as the pseudonymous account indicators keeps (home page from settings, name the
pseudonym), or, when the actor was not mapped to a student, as an account that says it was not kept. Result, context,
verb display, activity definitions and attachments were not kept and are not returned; nor are agents in the object.

Voiding (xAPI-Data.md 2.3.2): a statement is voided when a stored statement with the voided verb points to it. A
voided statement is found only by voidedStatementId, any other only by statementId (2.1.4).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import psycopg

from tend_indicators.ingest.records import stored_key

VOIDED_VERB = "http://adlnet.gov/expapi/verbs/voided"
# The version a statement is returned in when the one it was sent with was not kept (xAPI-Data.md 2.4.10).
RETURNED_VERSION = "1.0.0"
NOT_KEPT = "not-kept"


@dataclass(frozen=True)
class StoredStatement:
    statement_id: uuid.UUID
    pseudonym: str | None
    verb_id: str
    occurred_at: datetime
    object_type: str
    object_id: str | None
    stored_at: datetime
    source: str


def find(conn: psycopg.Connection[Any], source: str, statement_id: uuid.UUID, voided: bool) -> StoredStatement | None:
    """The statement `source` sent with this id; None if it sent none, or if it is voided and `voided` is False (or
    the other way round)."""
    row = conn.execute(
        "SELECT x.student_pseudonym, x.verb_id, coalesce(x.occurred_at, e.occurred_at, x.stored_at),"
        " coalesce(x.object_type, CASE WHEN e.object_ref LIKE '%%:%%' THEN 'Activity' END),"
        " coalesce(x.object_ref, CASE WHEN e.object_ref LIKE '%%:%%' THEN e.object_ref END), x.stored_at,"
        " EXISTS (SELECT 1 FROM xapi_statements v WHERE v.object_type = 'StatementRef'"
        "  AND v.object_ref = x.statement_id::text AND v.verb_id = %s)"
        " FROM xapi_statements x LEFT JOIN engagement_events e ON e.event_key = %s"
        " WHERE x.statement_id = %s AND x.source = %s",
        (VOIDED_VERB, stored_key(f"xapi:{statement_id}"), statement_id, source),
    ).fetchone()
    if row is None:
        return None
    pseudonym, verb_id, occurred_at, object_type, object_id, stored_at, is_voided = row
    if bool(is_voided) != voided:
        return None
    return StoredStatement(
        statement_id, pseudonym, verb_id, occurred_at, object_type or "", object_id, stored_at, source
    )


def _agent(home_page: str, name: str) -> dict[str, Any]:
    return {"objectType": "Agent", "account": {"homePage": home_page, "name": name}}


def _instant(at: datetime) -> str:
    return at.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def as_json(statement: StoredStatement, pseudonym_home_page: str) -> dict[str, Any]:
    """The statement as xAPI JSON, naming people by pseudonym only."""
    home = pseudonym_home_page.rstrip("/")
    target: dict[str, Any] = {"objectType": statement.object_type or "Activity"}
    if statement.object_id is not None:
        target["id"] = statement.object_id
    elif statement.object_type in ("Agent", "Group"):
        target.update(_agent(home, NOT_KEPT), objectType=statement.object_type)
    return {
        "id": str(statement.statement_id),
        "actor": _agent(home, statement.pseudonym or NOT_KEPT),
        "verb": {"id": statement.verb_id},
        "object": target,
        "timestamp": _instant(statement.occurred_at),
        "stored": _instant(statement.stored_at),
        "authority": _agent(f"{home}/sources", statement.source),
        "version": RETURNED_VERSION,
    }
