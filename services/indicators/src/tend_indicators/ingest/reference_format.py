"""The reference data format (JSON, documented in docs/indicators.md): module runs with their dates, enrolments and
students' programme and visa status (students named by an identifier, mapped to pseudonyms at the door), expected
assignments, expected teaching sessions, and which module run an activity (an xAPI course) belongs to.

Checked whole before anything is stored; entries of students identity does not know are skipped and counted.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from psycopg_pool import ConnectionPool

from tend_indicators.directory import Directory, IdentifierKind
from tend_indicators.ingest import reference
from tend_indicators.ingest.fields import aware_time, calendar_date, plain_id, readable_label
from tend_indicators.ingest.mapping import map_identifiers
from tend_indicators.ingest.problems import Problem, RejectedInput

SECTIONS = ("module_runs", "students", "enrolments", "assignments", "sessions", "activities")


@dataclass
class ReferenceBatch:
    module_runs: list[reference.ModuleRun] = field(default_factory=list)
    # (identifier kind, identifier, the rest) until mapped.
    students: list[tuple[IdentifierKind, str, reference.Student]] = field(default_factory=list)
    enrolments: list[tuple[IdentifierKind, str, reference.Enrolment]] = field(default_factory=list)
    assignments: list[reference.ExpectedAssignment] = field(default_factory=list)
    sessions: list[reference.ScheduledSession] = field(default_factory=list)
    activities: list[reference.ActivityModuleRun] = field(default_factory=list)


class _Reader:
    def __init__(self) -> None:
        self.problems: list[Problem] = []

    def fail(self, where: str, rule: str) -> None:
        self.problems.append(Problem(where, "", rule))

    def fields(self, item: Any, where: str, allowed: set[str], required: set[str]) -> Mapping[str, Any] | None:
        if not isinstance(item, dict):
            self.fail(where, "must be an object")
            return None
        for name in item:
            if name not in allowed:
                self.fail(where, f"unknown field {name!r}")
        for name in sorted(required - set(item)):
            self.fail(where, f"{name} is required")
        return item

    def ident(self, item: Mapping[str, Any], name: str, where: str, required: bool = True) -> str | None:
        value = item.get(name)
        if value in (None, ""):
            if required:
                self.fail(where, f"{name} is required")
            return None
        checked = plain_id(value)
        if checked is None:
            self.fail(where, f"{name} must be an id without spaces (at most 300 characters)")
        return checked

    def label(self, item: Mapping[str, Any], name: str, where: str) -> str | None:
        """An optional label shown to people (a module run's label, an assignment's title); None when absent."""
        if item.get(name) is None:
            return None
        try:
            return readable_label(item[name])
        except ValueError as exc:
            # The rule only, never the value: a label could hold anything a source put in it.
            self.fail(where, f"{name} {exc}")
            return None

    def day(self, item: Mapping[str, Any], name: str, where: str) -> Any:
        value = calendar_date(item.get(name))
        if isinstance(value, str):
            self.fail(where, f"{name} {value}")
            return None
        return value

    def student(self, item: Mapping[str, Any], where: str) -> tuple[IdentifierKind, str] | None:
        student = item.get("student")
        if not isinstance(student, dict) or not isinstance(student.get("id"), str) or "kind" not in student:
            self.fail(where, 'student must be {"kind": ..., "id": ...}')
            return None
        if set(student) - {"kind", "id"}:
            self.fail(where, "student has fields other than kind and id")
        try:
            kind = IdentifierKind.from_name(str(student["kind"]))
        except ValueError as exc:
            self.fail(where, f"student.kind: {exc}")
            return None
        return kind, student["id"].strip()


def parse(body: bytes) -> ReferenceBatch:
    try:
        document = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise RejectedInput([Problem("body", "", f"is not valid JSON ({type(exc).__name__})")]) from exc
    if not isinstance(document, dict):
        raise RejectedInput([Problem("body", "", "must be a JSON object with lists named " + ", ".join(SECTIONS))])
    reader = _Reader()
    for name in document:
        if name not in SECTIONS:
            reader.fail("body", f"unknown section {name!r}")
        elif not isinstance(document[name], list):
            reader.fail(name, "must be a list")
    batch = ReferenceBatch()
    if not reader.problems:
        _read_sections(document, reader, batch)
    if reader.problems:
        raise RejectedInput(reader.problems)
    return batch


def _read_sections(document: Mapping[str, Any], reader: _Reader, batch: ReferenceBatch) -> None:
    _read_module_runs(document, reader, batch)
    _read_students(document, reader, batch)
    _read_enrolments(document, reader, batch)
    _read_assignments(document, reader, batch)
    _read_sessions(document, reader, batch)
    _read_activities(document, reader, batch)


def _read_module_runs(document: Mapping[str, Any], reader: _Reader, batch: ReferenceBatch) -> None:
    for index, raw in enumerate(document.get("module_runs", [])):
        where = f"module_runs[{index}]"
        item = reader.fields(
            raw,
            where,
            {"module_run_id", "institution_id", "programme_id", "starts_on", "ends_on", "label"},
            {"module_run_id"},
        )
        if item is None:
            continue
        run_id = reader.ident(item, "module_run_id", where)
        starts, ends = reader.day(item, "starts_on", where), reader.day(item, "ends_on", where)
        if starts and ends and ends < starts:
            reader.fail(where, "ends_on is before starts_on")
        if run_id:
            batch.module_runs.append(
                reference.ModuleRun(
                    run_id,
                    reader.ident(item, "institution_id", where, required=False),
                    reader.ident(item, "programme_id", where, required=False),
                    starts,
                    ends,
                    reader.label(item, "label", where),
                )
            )


def _read_students(document: Mapping[str, Any], reader: _Reader, batch: ReferenceBatch) -> None:
    for index, raw in enumerate(document.get("students", [])):
        where = f"students[{index}]"
        item = reader.fields(raw, where, {"student", "institution_id", "programme_id", "sponsored_visa"}, {"student"})
        if item is None:
            continue
        named = reader.student(item, where)
        visa = item.get("sponsored_visa", False)
        if not isinstance(visa, bool):
            reader.fail(where, "sponsored_visa must be true or false")
        if named:
            institution = reader.ident(item, "institution_id", where, required=False)
            programme = reader.ident(item, "programme_id", where, required=False)
            batch.students.append((*named, reference.Student("", institution, programme, visa is True)))


def _read_enrolments(document: Mapping[str, Any], reader: _Reader, batch: ReferenceBatch) -> None:
    for index, raw in enumerate(document.get("enrolments", [])):
        where = f"enrolments[{index}]"
        item = reader.fields(
            raw, where, {"student", "module_run_id", "registered_on", "unregistered_on"}, {"student", "module_run_id"}
        )
        if item is None:
            continue
        named = reader.student(item, where)
        run_id = reader.ident(item, "module_run_id", where)
        registered, unregistered = reader.day(item, "registered_on", where), reader.day(item, "unregistered_on", where)
        if registered and unregistered and unregistered < registered:
            reader.fail(where, "unregistered_on is before registered_on")
        if named and run_id:
            batch.enrolments.append((*named, reference.Enrolment(run_id, "", registered, unregistered)))


def _read_assignments(document: Mapping[str, Any], reader: _Reader, batch: ReferenceBatch) -> None:
    for index, raw in enumerate(document.get("assignments", [])):
        where = f"assignments[{index}]"
        item = reader.fields(
            raw,
            where,
            {"assignment_id", "module_run_id", "due_at", "title"},
            {"assignment_id", "module_run_id", "due_at"},
        )
        if item is None:
            continue
        due = aware_time(item.get("due_at"), now=_far_future())
        if isinstance(due, str):
            reader.fail(where, f"due_at {due}")
        assignment_id, run_id = reader.ident(item, "assignment_id", where), reader.ident(item, "module_run_id", where)
        title = reader.label(item, "title", where)
        if assignment_id and run_id and not isinstance(due, str):
            batch.assignments.append(reference.ExpectedAssignment(assignment_id, run_id, due, title))


def _read_sessions(document: Mapping[str, Any], reader: _Reader, batch: ReferenceBatch) -> None:
    for index, raw in enumerate(document.get("sessions", [])):
        where = f"sessions[{index}]"
        item = reader.fields(
            raw, where, {"session_id", "module_run_id", "starts_at"}, {"session_id", "module_run_id", "starts_at"}
        )
        if item is None:
            continue
        starts_at = aware_time(item.get("starts_at"), now=_far_future())
        if isinstance(starts_at, str):
            reader.fail(where, f"starts_at {starts_at}")
        session_id, run_id = reader.ident(item, "session_id", where), reader.ident(item, "module_run_id", where)
        if session_id and run_id and not isinstance(starts_at, str):
            batch.sessions.append(reference.ScheduledSession(session_id, run_id, starts_at))


def _read_activities(document: Mapping[str, Any], reader: _Reader, batch: ReferenceBatch) -> None:
    for index, raw in enumerate(document.get("activities", [])):
        where = f"activities[{index}]"
        item = reader.fields(raw, where, {"activity_id", "module_run_id"}, {"activity_id", "module_run_id"})
        if item is None:
            continue
        activity = item.get("activity_id")
        run_id = reader.ident(item, "module_run_id", where)
        if not isinstance(activity, str) or not activity or len(activity) > 500:
            reader.fail(where, "activity_id must be an IRI of at most 500 characters")
        elif run_id:
            batch.activities.append(reference.ActivityModuleRun(activity, run_id))


def _far_future() -> datetime:
    # Deadlines and timetabled sessions lie ahead; only their form is checked.
    return datetime(9000, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class ReferenceResult:
    changed: int
    unknown_students: list[str]

    def as_json(self) -> dict[str, Any]:
        return {"changed": self.changed, "unknown_students": self.unknown_students}


def ingest(pool: ConnectionPool, directory: Directory, batch: ReferenceBatch) -> ReferenceResult:
    wanted = [(kind, ident) for kind, ident, _ in batch.students] + [(k, i) for k, i, _ in batch.enrolments]
    pseudonyms = map_identifiers(directory, wanted)
    unknown: list[str] = []
    students = []
    for index, (kind, ident, student) in enumerate(batch.students):
        pseudonym = pseudonyms.get((kind, ident))
        if pseudonym is None:
            unknown.append(f"students[{index}]")
        else:
            students.append(
                reference.Student(pseudonym, student.institution_id, student.programme_id, student.sponsored_visa)
            )
    enrolments = []
    for index, (kind, ident, enrolment) in enumerate(batch.enrolments):
        pseudonym = pseudonyms.get((kind, ident))
        if pseudonym is None:
            unknown.append(f"enrolments[{index}]")
        else:
            enrolments.append(
                reference.Enrolment(
                    enrolment.module_run_id, pseudonym, enrolment.registered_on, enrolment.unregistered_on
                )
            )
    with pool.connection() as conn, conn.transaction(), conn.cursor() as cur:
        changed = reference.store_module_runs(cur, batch.module_runs)
        reference.ensure_module_runs(
            cur,
            [e.module_run_id for e in enrolments]
            + [a.module_run_id for a in batch.assignments]
            + [s.module_run_id for s in batch.sessions],
        )
        changed += reference.store_students(cur, students)
        changed += reference.store_enrolments(cur, enrolments)
        changed += reference.store_assignments(cur, batch.assignments)
        changed += reference.store_sessions(cur, batch.sessions)
        changed += reference.store_activity_module_runs(cur, batch.activities)
    return ReferenceResult(changed, unknown)
