"""Reference data the rules need: module runs, enrolments, students' programme and visa status, expected
assignments, expected teaching sessions, and which module run an activity belongs to.

Every write is an upsert that leaves an unchanged row untouched, so sending the same data again changes nothing,
and sending corrected data (a late unregistration, a moved deadline) updates it. Labels and titles are optional: one
sent replaces the stored one, and an entry sent without one keeps what is stored (a source that does not know them
does not erase them).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

import psycopg

from tend_indicators.ingest.records import CHANGED_CHANNEL


@dataclass(frozen=True)
class ModuleRun:
    module_run_id: str
    institution_id: str | None = None
    programme_id: str | None = None
    starts_on: date | None = None
    ends_on: date | None = None
    # What a person calls it, for example "CS101 Programming, 2026/27".
    label: str | None = None


@dataclass(frozen=True)
class Enrolment:
    module_run_id: str
    student_pseudonym: str
    registered_on: date | None = None
    unregistered_on: date | None = None


@dataclass(frozen=True)
class Student:
    student_pseudonym: str
    institution_id: str | None = None
    programme_id: str | None = None
    sponsored_visa: bool = False


@dataclass(frozen=True)
class ExpectedAssignment:
    assignment_id: str
    module_run_id: str
    due_at: datetime
    # What a person calls it, for example "Coursework 1".
    title: str | None = None


@dataclass(frozen=True)
class ScheduledSession:
    session_id: str
    module_run_id: str
    starts_at: datetime


@dataclass(frozen=True)
class ActivityModuleRun:
    activity_id: str
    module_run_id: str


def _upsert(
    cursor: psycopg.Cursor[Any],
    table: str,
    keys: Sequence[str],
    columns: Sequence[str],
    rows: list[tuple[Any, ...]],
    kept_when_absent: Sequence[str] = (),
) -> int:
    """`kept_when_absent`: columns whose stored value stays when a row brings none (None)."""
    if not rows:
        return 0
    names = [*keys, *columns]
    placeholders = ", ".join(["%s"] * len(names))
    new = {c: f"COALESCE(EXCLUDED.{c}, {table}.{c})" if c in kept_when_absent else f"EXCLUDED.{c}" for c in columns}
    updates = ", ".join(f"{c} = {value}" for c, value in new.items())
    changed = " OR ".join(f"{table}.{c} IS DISTINCT FROM {value}" for c, value in new.items())
    touch = ", updated_at = now()" if table != "activity_module_runs" else ""
    cursor.executemany(
        f"INSERT INTO {table} ({', '.join(names)}) VALUES ({placeholders})"
        f" ON CONFLICT ({', '.join(keys)}) DO UPDATE SET {updates}{touch} WHERE {changed}",
        rows,
    )
    changed_rows = cursor.rowcount
    if changed_rows:
        cursor.execute(f"NOTIFY {CHANGED_CHANNEL}")
    return changed_rows


def store_module_runs(cursor: psycopg.Cursor[Any], runs: Sequence[ModuleRun]) -> int:
    rows = [(r.module_run_id, r.institution_id, r.programme_id, r.starts_on, r.ends_on, r.label) for r in runs]
    columns = ["institution_id", "programme_id", "starts_on", "ends_on", "label"]
    return _upsert(cursor, "module_runs", ["module_run_id"], columns, rows, kept_when_absent=["label"])


def store_enrolments(cursor: psycopg.Cursor[Any], enrolments: Sequence[Enrolment]) -> int:
    rows = [(e.module_run_id, e.student_pseudonym, e.registered_on, e.unregistered_on) for e in enrolments]
    columns = ["registered_on", "unregistered_on"]
    return _upsert(cursor, "enrolments", ["module_run_id", "student_pseudonym"], columns, rows)


def store_students(cursor: psycopg.Cursor[Any], students: Sequence[Student]) -> int:
    rows = [(s.student_pseudonym, s.institution_id, s.programme_id, s.sponsored_visa) for s in students]
    columns = ["institution_id", "programme_id", "sponsored_visa"]
    return _upsert(cursor, "students", ["student_pseudonym"], columns, rows)


def store_assignments(cursor: psycopg.Cursor[Any], assignments: Sequence[ExpectedAssignment]) -> int:
    rows = [(a.assignment_id, a.module_run_id, a.due_at, a.title) for a in assignments]
    columns = ["module_run_id", "due_at", "title"]
    return _upsert(cursor, "assignments", ["assignment_id"], columns, rows, kept_when_absent=["title"])


def store_sessions(cursor: psycopg.Cursor[Any], sessions: Sequence[ScheduledSession]) -> int:
    rows = [(s.session_id, s.module_run_id, s.starts_at) for s in sessions]
    return _upsert(cursor, "scheduled_sessions", ["session_id"], ["module_run_id", "starts_at"], rows)


def store_activity_module_runs(cursor: psycopg.Cursor[Any], links: Sequence[ActivityModuleRun]) -> int:
    rows = [(link.activity_id, link.module_run_id) for link in links]
    return _upsert(cursor, "activity_module_runs", ["activity_id"], ["module_run_id"], rows)


def ensure_module_runs(cursor: psycopg.Cursor[Any], module_run_ids: Sequence[str]) -> None:
    """Module runs first seen in engagement (an attendance event, say) get a row with no dates yet."""
    ids = sorted({m for m in module_run_ids if m})
    if ids:
        cursor.execute(
            "INSERT INTO module_runs (module_run_id) SELECT unnest(%s::text[]) ON CONFLICT DO NOTHING", (ids,)
        )
