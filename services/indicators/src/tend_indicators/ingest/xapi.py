"""Storing xAPI statements (xAPI-Communication.md 2.1.1 PUT and 2.1.2 POST Statements), keyed by pseudonym.

- A batch is checked whole: one invalid statement refuses the batch with 400, naming every bad statement (its position
  and id) and the rule it broke; nothing of it is stored.
- Two statements of one batch with the same id: 400, as 2.1.2 says the LRS SHOULD* (the IEEE standard: shall).
- A statement whose id is already stored with different content: 409 Conflict (2.1.1.s2.b3), and the whole request
  changes nothing (2.1.1.s2.b2). With the same content it is acknowledged and changes nothing.
- A statement without an id gets one from the LRS (2.4.1.s2.b1). It is derived from the statement's content, so
  sending the same statement again is recognised and changes nothing; identical statements (the Moodle sample holds
  21 repeats) are one statement, and the response repeats its id in each place.
- "Same content" follows the comparison rules of 2.3.1: id, stored, authority, version, attachments, the verb's
  display and activity definitions are ignored; timestamps compare as instants.

The actor is mapped to a pseudonym through identity at the door (an account name as a user name, a mailto as an
e-mail address). The statement itself is not kept: only its id, a fingerprint of its content (for conflicts), the
pseudonym, the parts that name no one (verb id, time, the object's type and its id when an Activity or StatementRef)
and an engagement record (verb, activity id, time); xapi_read.py rebuilds a statement from these for GET. Statements
about actors identity does not know as students (staff, anonymous or mbox_sha1sum actors, Groups) are acknowledged
and kept without an actor or engagement record.
"""

from __future__ import annotations

import copy
import hashlib
import json
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import psycopg
from psycopg_pool import ConnectionPool

from tend_indicators.directory import Directory, IdentifierKind
from tend_indicators.ingest.mapping import map_identifiers
from tend_indicators.ingest.problems import Problem, RejectedInput
from tend_indicators.ingest.records import DEFAULT_TIMEZONE, EngagementRecord, store_records
from tend_indicators.ingest.reference import ensure_module_runs
from tend_indicators.ingest.xapi_validation import StatementValidator, parse_timestamp

# Fixed for ever: ids of statements sent without one are derived from it and their content.
STATEMENT_ID_NAMESPACE = uuid.UUID("0b6f2c5e-8a57-4b0e-9d1c-2e3f4a5b6c7d")
MAX_STATEMENTS = 5000
SOURCE_VLE = "vle"


@dataclass(frozen=True)
class PreparedStatement:
    index: int
    statement_id: uuid.UUID
    fingerprint: bytes
    verb_id: str
    object_ref: str
    occurred_at: datetime
    object_type: str
    # The id of an Activity or StatementRef object (neither names anyone); None for Agents, Groups, SubStatements.
    target_id: str | None
    # (kind, identifier) of the actor when it can name a student; None otherwise.
    actor: tuple[IdentifierKind, str] | None
    # Activity ids of the statement's context (course, module), to find its module run.
    context_activities: tuple[str, ...]


def canonical_content(statement: Mapping[str, Any]) -> bytes:
    """The statement as compared under 2.3.1: what may legitimately differ between two copies is removed."""
    content = copy.deepcopy(dict(statement))
    for name in ("id", "stored", "authority", "version", "attachments"):
        content.pop(name, None)
    verb = content.get("verb")
    if isinstance(verb, dict):
        verb.pop("display", None)
    _drop_definitions(content)
    timestamp = content.get("timestamp")
    if isinstance(timestamp, str):
        parsed = parse_timestamp(timestamp)
        if parsed is not None:
            content["timestamp"] = parsed.astimezone(UTC).isoformat(timespec="microseconds")
    actor = content.get("actor")
    if isinstance(actor, dict) and isinstance(actor.get("mbox"), str):
        actor["mbox"] = actor["mbox"].lower()
    return json.dumps(content, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def generated_id(statement: Mapping[str, Any]) -> uuid.UUID:
    """The id of a statement sent without one: derived from all of its content (definitions included, so statements
    that differ only there stay apart), so that sending it again finds it. Identical statements are one statement."""
    content = {k: v for k, v in statement.items() if k not in ("id", "stored", "authority", "version")}
    text = json.dumps(content, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return uuid.uuid5(STATEMENT_ID_NAMESPACE, hashlib.sha256(text.encode()).hexdigest())


def _drop_definitions(value: Any) -> None:
    if isinstance(value, dict):
        if value.get("objectType", "Activity") == "Activity" and "id" in value:
            value.pop("definition", None)
        for key, item in value.items():
            if key not in ("extensions",):
                _drop_definitions(item)
    elif isinstance(value, list):
        for item in value:
            _drop_definitions(item)


def _actor_identifier(actor: Any, home_pages: Sequence[str]) -> tuple[IdentifierKind, str] | None:
    if not isinstance(actor, dict) or actor.get("objectType", "Agent") != "Agent":
        return None
    if isinstance(actor.get("mbox"), str):
        return IdentifierKind.EMAIL, actor["mbox"].removeprefix("mailto:").strip().lower()
    account = actor.get("account")
    if isinstance(account, dict) and isinstance(account.get("name"), str):
        if home_pages and account.get("homePage", "").rstrip("/") not in {h.rstrip("/") for h in home_pages}:
            return None
        return IdentifierKind.USERNAME, account["name"].strip()
    return None


def _context_activity_ids(statement: Mapping[str, Any]) -> tuple[str, ...]:
    context = statement.get("context")
    if not isinstance(context, dict):
        return ()
    activities = context.get("contextActivities")
    if not isinstance(activities, dict):
        return ()
    ids: list[str] = []
    for key in ("parent", "grouping", "other", "category"):
        items = activities.get(key, [])
        for item in items if isinstance(items, list) else [items]:
            if isinstance(item, dict) and isinstance(item.get("id"), str):
                ids.append(item["id"])
    return tuple(ids)


def _target_id(target: Mapping[str, Any], object_type: str) -> str | None:
    if object_type == "Activity":
        return str(target["id"])
    if object_type == "StatementRef":
        return str(uuid.UUID(target["id"]))  # canonical, so a voided statement is found by its id
    return None


def prepare(
    statements: Sequence[Any], home_pages: Sequence[str] = (), received_at: datetime | None = None
) -> list[PreparedStatement]:
    """Validates a batch and gives each statement its id and fingerprint; RejectedInput (400) otherwise."""
    if not statements:
        raise RejectedInput([Problem("batch", "", "holds no statements")])
    if len(statements) > MAX_STATEMENTS:
        raise RejectedInput([Problem("batch", "", f"holds more than {MAX_STATEMENTS} statements; split it")])
    now = received_at or datetime.now(UTC)
    validator = StatementValidator()
    problems: list[Problem] = []
    prepared: list[PreparedStatement] = []
    first_with_id: dict[uuid.UUID, int] = {}
    for index, statement in enumerate(statements):
        given_id = statement.get("id") if isinstance(statement, dict) else None
        label = given_id if isinstance(given_id, str) else ""
        found = validator.validate(statement)
        if found:
            problems.extend(Problem(f"statement {index}", label, rule) for rule in found)
            continue
        content = canonical_content(statement)
        fingerprint = hashlib.sha256(content).digest()
        if isinstance(given_id, str):
            statement_id = uuid.UUID(given_id)
            if statement_id in first_with_id:
                problems.append(
                    Problem(
                        f"statement {index}",
                        label,
                        f"has the same id as statement {first_with_id[statement_id]} of this batch",
                    )
                )
                continue
            first_with_id[statement_id] = index
        else:
            statement_id = generated_id(statement)
        timestamp = statement.get("timestamp")
        occurred_at = parse_timestamp(timestamp) if isinstance(timestamp, str) else None
        target = statement["object"]
        object_type = target.get("objectType", "Activity")
        prepared.append(
            PreparedStatement(
                index=index,
                statement_id=statement_id,
                fingerprint=fingerprint,
                verb_id=statement["verb"]["id"],
                # The object's id only when it is an activity: an Agent object's identifiers are personal data.
                object_ref=target["id"] if object_type == "Activity" else object_type,
                occurred_at=(occurred_at or now).astimezone(UTC),
                object_type=object_type,
                target_id=_target_id(target, object_type),
                actor=_actor_identifier(statement["actor"], home_pages),
                context_activities=_context_activity_ids(statement),
            )
        )
    if problems:
        raise RejectedInput(problems)
    return prepared


def _stored_fingerprints(cursor: psycopg.Cursor[Any], ids: list[uuid.UUID]) -> dict[uuid.UUID, bytes]:
    cursor.execute("SELECT statement_id, fingerprint FROM xapi_statements WHERE statement_id = ANY(%s)", (ids,))
    return {row[0]: bytes(row[1]) for row in cursor.fetchall()}


def _conflicts(prepared: Sequence[PreparedStatement], stored: Mapping[uuid.UUID, bytes]) -> list[Problem]:
    return [
        Problem(
            f"statement {p.index}",
            str(p.statement_id),
            "an earlier statement with this id has different content (409 Conflict: nothing was changed)",
        )
        for p in prepared
        if p.statement_id in stored and stored[p.statement_id] != p.fingerprint
    ]


@dataclass(frozen=True)
class StoreResult:
    ids: list[str]
    stored: int
    already_stored: int
    not_students: int


def store(
    pool: ConnectionPool,
    directory: Directory,
    source: str,
    prepared: Sequence[PreparedStatement],
    timezone: str = DEFAULT_TIMEZONE,
) -> StoreResult:
    """Maps the actors, then stores the batch in one transaction, or nothing (RejectedInput 409 on a conflict)."""
    unique: dict[uuid.UUID, PreparedStatement] = {}
    for p in prepared:
        unique.setdefault(p.statement_id, p)
    with pool.connection() as conn:
        stored = _stored_fingerprints(conn.cursor(), list(unique))
        conflicts = _conflicts(list(unique.values()), stored)
        if conflicts:
            raise RejectedInput(conflicts, status=409)
        new = [p for p in unique.values() if p.statement_id not in stored]
        pseudonyms = map_identifiers(directory, (p.actor for p in new if p.actor is not None))
        with conn.transaction(), conn.cursor() as cur:
            runs = _module_runs(cur, {a for p in new for a in p.context_activities})
            cur.executemany(
                "INSERT INTO xapi_statements (statement_id, fingerprint, source, student_pseudonym, verb_id,"
                " occurred_at, object_type, object_ref) VALUES (%s, %s, %s, %s, %s, %s, %s, %s)"
                " ON CONFLICT (statement_id) DO NOTHING",
                [
                    (
                        p.statement_id,
                        p.fingerprint,
                        source,
                        pseudonyms.get(p.actor) if p.actor else None,
                        p.verb_id,
                        p.occurred_at,
                        p.object_type,
                        p.target_id,
                    )
                    for p in new
                ],
            )
            # A concurrent request may have stored one of these ids first, perhaps with other content.
            raced = _conflicts(new, _stored_fingerprints(cur, [p.statement_id for p in new]))
            if raced:
                raise RejectedInput(raced, status=409)
            records = [
                EngagementRecord(
                    event_key=f"xapi:{p.statement_id}",
                    student_pseudonym=pseudonym,
                    module_run_id=next((runs[a] for a in p.context_activities if a in runs), ""),
                    source=SOURCE_VLE,
                    activity=p.verb_id,
                    occurred_at=p.occurred_at,
                    object_ref=p.object_ref[:500],
                )
                for p in new
                if p.actor is not None and (pseudonym := pseudonyms.get(p.actor)) is not None
            ]
            ensure_module_runs(cur, [r.module_run_id for r in records])
            store_records(cur, records, timezone)
    return StoreResult(
        ids=[str(p.statement_id) for p in prepared],
        stored=len(new),
        already_stored=len(unique) - len(new),
        not_students=len(new) - len(records),
    )


def _module_runs(cursor: psycopg.Cursor[Any], activity_ids: set[str]) -> dict[str, str]:
    if not activity_ids:
        return {}
    cursor.execute(
        "SELECT activity_id, module_run_id FROM activity_module_runs WHERE activity_id = ANY(%s)",
        (sorted(activity_ids),),
    )
    return {row[0]: row[1] for row in cursor.fetchall()}
