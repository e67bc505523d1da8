"""The generic event format, for the systems in the seeds that have no standard export: library visits and loans,
printing, online meetings attended, lecture recordings watched, assignments submitted (documented in
docs/indicators.md). JSON ({"events": [...]}) or CSV with a header row, one event per record.

A batch is checked whole before anything is stored: any malformed record refuses the batch, naming every bad record
and field. Students are named by an identifier kind and value, mapped to pseudonyms through identity; events of
students identity does not know are skipped and counted (their positions returned), never stored with the
identifier. The source's event id, kept only as a digest, makes sending the same event again a no-op.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from psycopg_pool import ConnectionPool

from tend_indicators.directory import Directory, IdentifierKind
from tend_indicators.ingest.fields import aware_time, plain_id
from tend_indicators.ingest.mapping import map_identifiers
from tend_indicators.ingest.problems import Problem, RejectedInput
from tend_indicators.ingest.records import DEFAULT_TIMEZONE, EngagementRecord, digest, store_records
from tend_indicators.ingest.reference import ensure_module_runs

# Event type -> (source, activity).
EVENT_TYPES: Mapping[str, tuple[str, str]] = {
    "vle_activity": ("vle", "active"),
    "library_visit": ("library", "visited"),
    "library_loan": ("library", "borrowed"),
    "printing": ("printing", "printed"),
    "meeting_attended": ("meeting", "attended"),
    "recording_watched": ("recording", "watched"),
    "assignment_submitted": ("assignment", "submitted"),
}
FIELDS = ("event_id", "student_id_kind", "student_id", "type", "occurred_at", "module_run_id", "amount", "object_id")
REQUIRED = ("event_id", "student_id_kind", "student_id", "type", "occurred_at")
MAX_EVENTS = 100_000
MAX_AMOUNT = 1_000_000


@dataclass(frozen=True)
class GenericEvent:
    event_id: str
    kind: IdentifierKind
    student_id: str
    type: str
    occurred_at: datetime
    module_run_id: str
    amount: int
    object_id: str


@dataclass(frozen=True)
class IngestResult:
    received: int
    stored: int
    already_stored: int
    # Positions of the records whose student identity does not know (skipped).
    unknown_students: list[int]

    def as_json(self) -> dict[str, Any]:
        return {
            "received": self.received,
            "stored": self.stored,
            "already_stored": self.already_stored,
            "unknown_students": self.unknown_students,
        }


def parse_json(body: bytes) -> list[Mapping[str, Any]]:
    try:
        document = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise RejectedInput([Problem("body", "", f"is not valid JSON ({type(exc).__name__})")]) from exc
    events = document.get("events") if isinstance(document, dict) else document
    if not isinstance(events, list) or not all(isinstance(e, dict) for e in events):
        raise RejectedInput([Problem("body", "", 'must be {"events": [ {...}, ... ]} or a list of event objects')])
    return events


def parse_csv(text: str) -> list[Mapping[str, Any]]:
    reader = csv.DictReader(io.StringIO(text, newline=""))
    header = reader.fieldnames or []
    unknown = [name for name in header if name not in FIELDS]
    missing = [name for name in REQUIRED if name not in header]
    problems = [Problem("header", "", f"unknown column {name!r}") for name in unknown]
    problems += [Problem("header", "", f"missing column {name!r}") for name in missing]
    if problems:
        raise RejectedInput(problems)
    return [{k: v for k, v in row.items() if v not in (None, "")} for row in reader]


def validate(raw_events: Sequence[Mapping[str, Any]], first_line: int = 0, label: str = "event") -> list[GenericEvent]:
    """Every event checked; RejectedInput names each bad one. `label`/`first_line` say how to name a record."""
    if len(raw_events) > MAX_EVENTS:
        raise RejectedInput([Problem("batch", "", f"has more than {MAX_EVENTS} events; split it")])
    if not raw_events:
        raise RejectedInput([Problem("batch", "", "has no events")])
    events: list[GenericEvent] = []
    problems: list[Problem] = []
    seen: dict[str, int] = {}
    for index, raw in enumerate(raw_events):
        where = f"{label} {index + first_line}"
        found = _event(raw, where)
        if isinstance(found, list):
            problems.extend(found)
            continue
        if found.event_id in seen:
            problems.append(Problem(where, "", f"repeats the event_id of {label} {seen[found.event_id] + first_line}"))
            continue
        seen[found.event_id] = index
        events.append(found)
    if problems:
        raise RejectedInput(problems)
    return events


def _event(raw: Mapping[str, Any], where: str) -> GenericEvent | list[Problem]:
    problems = [Problem(where, "", f"unknown field {name!r}") for name in raw if name not in FIELDS]
    problems += [Problem(where, "", f"{name} is required") for name in REQUIRED if raw.get(name) in (None, "")]
    if problems:
        return problems
    event_id = raw["event_id"]
    if not isinstance(event_id, str) or len(event_id) > 200:
        problems.append(Problem(where, "", "event_id must be text of at most 200 characters"))
    try:
        kind = IdentifierKind.from_name(str(raw["student_id_kind"]))
    except ValueError as exc:
        problems.append(Problem(where, "", f"student_id_kind: {exc}"))
        kind = IdentifierKind.STUDENT_NUMBER
    student_id = raw["student_id"]
    if not isinstance(student_id, str) or len(student_id) > 320:
        problems.append(Problem(where, "", "student_id must be text of at most 320 characters"))
    event_type = raw["type"]
    if event_type not in EVENT_TYPES:
        problems.append(Problem(where, "", f"type must be one of {', '.join(EVENT_TYPES)}"))
    occurred_at = aware_time(raw["occurred_at"])
    if isinstance(occurred_at, str):
        problems.append(Problem(where, "", f"occurred_at {occurred_at}"))
    module_run_id = raw.get("module_run_id", "")
    if module_run_id and plain_id(module_run_id) is None:
        problems.append(Problem(where, "", "module_run_id must be an id without spaces (at most 300 characters)"))
    object_id = raw.get("object_id", "")
    if object_id and plain_id(object_id) is None:
        problems.append(Problem(where, "", "object_id must be an id without spaces (at most 300 characters)"))
    if event_type == "assignment_submitted" and not (module_run_id and object_id):
        problems.append(Problem(where, "", "assignment_submitted needs module_run_id and object_id (the assignment)"))
    amount = _amount(raw.get("amount", 1))
    if amount is None:
        problems.append(Problem(where, "", f"amount must be a whole number from 0 to {MAX_AMOUNT}"))
    if problems or isinstance(occurred_at, str) or amount is None:
        return problems
    return GenericEvent(
        event_id=str(event_id),
        kind=kind,
        student_id=str(student_id).strip(),
        type=str(event_type),
        occurred_at=occurred_at,
        module_run_id=str(module_run_id),
        amount=amount,
        object_id=str(object_id),
    )


def _amount(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, str):
        value = value.strip()
        if not value.isdigit():
            return None
        value = int(value)
    if not isinstance(value, int) or not 0 <= value <= MAX_AMOUNT:
        return None
    return value


def ingest(
    pool: ConnectionPool,
    directory: Directory,
    source: str,
    events: Sequence[GenericEvent],
    timezone: str = DEFAULT_TIMEZONE,
) -> IngestResult:
    """Maps the students, then stores the batch in one transaction. Raises DirectoryUnavailable (nothing stored)."""
    pseudonyms = map_identifiers(directory, ((e.kind, e.student_id) for e in events))
    records: list[EngagementRecord] = []
    unknown: list[int] = []
    for index, event in enumerate(events):
        pseudonym = pseudonyms.get((event.kind, event.student_id))
        if pseudonym is None:
            unknown.append(index)
            continue
        event_source, activity = EVENT_TYPES[event.type]
        records.append(
            EngagementRecord(
                event_key=f"generic:{source}:{digest(event.event_id)}",
                student_pseudonym=pseudonym,
                module_run_id=event.module_run_id,
                source=event_source,
                activity=activity,
                occurred_at=event.occurred_at,
                amount=event.amount,
                object_ref=event.object_id,
            )
        )
    with pool.connection() as conn, conn.transaction(), conn.cursor() as cur:
        ensure_module_runs(cur, [r.module_run_id for r in records])
        stored = store_records(cur, records, timezone)
    return IngestResult(len(events), stored, len(records) - stored, unknown)
