"""Loads what the rules read from the database: module runs, students, enrolments, daily activity per source,
submissions, expected sessions and attendance, up to the end of a day in the institution's time zone.

Activity comes from the daily totals kept as engagement is stored (one row per student, module run and day, with a
bit mask of its sources) and attendance, streamed with binary COPY, so recomputing for tens of thousands of students
moves millions of rows without holding them twice.
"""

from __future__ import annotations

import zoneinfo
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

import psycopg

from tend_indicators.activity import (
    SOURCE_BITS,
    Assignment,
    ExpectedSession,
    ModuleRunInfo,
    StudentHistory,
)

_BATCH_ROWS = 50_000
_ORDINAL = "(({} - DATE '0001-01-01') + 1)::int8"
# How far back activity is read: a year and a bit covers any term and its baselines.
HISTORY_DAYS = 400

_SOURCE_BIT_SQL = (
    "CASE source "
    + " ".join(f"WHEN '{name}' THEN {bit}" for name, bit in SOURCE_BITS.items())
    + (f" ELSE {SOURCE_BITS['other']} END")
)


@dataclass
class Population:
    runs: dict[str, ModuleRunInfo]
    students: dict[str, StudentHistory]


def day_bounds(as_of: date, zone: zoneinfo.ZoneInfo, history_days: int = HISTORY_DAYS) -> tuple[datetime, datetime]:
    """[start, end) in UTC: from `history_days` before `as_of` to the end of `as_of`, local time."""
    end = datetime.combine(as_of + timedelta(days=1), time(), tzinfo=zone).astimezone(UTC)
    start = datetime.combine(as_of - timedelta(days=history_days), time(), tzinfo=zone).astimezone(UTC)
    return start, end


def load_population(
    conn: psycopg.Connection[Any],
    as_of: date,
    timezone: str,
    default_institution: str,
    pseudonyms: list[str] | None = None,
) -> Population:
    """Everything the rules need as of `as_of`; with `pseudonyms`, only those students (and the module runs'
    reference data), for answering about one student."""
    zone = zoneinfo.ZoneInfo(timezone)
    start, end = day_bounds(as_of, zone)
    only = " AND student_pseudonym = ANY(%(only)s)" if pseudonyms is not None else ""
    params: dict[str, Any] = {
        "tz": timezone,
        "start": start,
        "end": end,
        "first_day": as_of - timedelta(days=HISTORY_DAYS),
        "last_day": as_of,
        "only": pseudonyms,
    }
    runs = _runs(conn, params, default_institution)
    students: dict[str, StudentHistory] = {}

    def student(pseudonym: str, run_id: str | None = None) -> StudentHistory:
        found = students.get(pseudonym)
        if found is None:
            run = runs.get(run_id or "")
            institution = run.institution if run is not None else default_institution
            found = students[pseudonym] = StudentHistory(pseudonym, institution)
        return found

    for pseudonym, institution, programme, visa in conn.execute(
        f"SELECT student_pseudonym, institution_id, programme_id, sponsored_visa FROM students WHERE true{only}", params
    ):
        history = student(pseudonym)
        history.institution = institution or default_institution
        history.programme = programme
        history.sponsored_visa = visa
    for run_id, pseudonym, registered, unregistered in conn.execute(
        f"SELECT module_run_id, student_pseudonym, registered_on, unregistered_on FROM enrolments WHERE true{only}",
        params,
    ):
        run_history = student(pseudonym, run_id).run(run_id)
        run_history.registered_on = registered.toordinal() if registered else None
        run_history.unregistered_on = unregistered.toordinal() if unregistered else None
    _activity(conn, params, only, student)
    for pseudonym, run_id, assignment_id, day in conn.execute(
        "SELECT student_pseudonym, module_run_id, object_ref, min((occurred_at AT TIME ZONE %(tz)s)::date)"
        " FROM engagement_events WHERE source = 'assignment' AND activity = 'submitted'"
        f" AND occurred_at < %(end)s{only} GROUP BY 1, 2, 3",
        params,
    ):
        student(pseudonym, run_id).run(run_id).submissions[assignment_id] = day.toordinal()
    attended = (
        "SELECT student_pseudonym, module_run_id, session_id::text FROM attendance"
        f" WHERE session_starts_at < %(end)s{only}"
    )
    for pseudonym, run_id, session_id in conn.execute(attended, params):
        student(pseudonym, run_id).run(run_id).attended.add(session_id)
    return Population(runs, students)


def _runs(conn: psycopg.Connection[Any], params: dict[str, Any], default_institution: str) -> dict[str, ModuleRunInfo]:
    runs: dict[str, ModuleRunInfo] = {}
    for run_id, institution, programme, starts, ends, label in conn.execute(
        "SELECT module_run_id, institution_id, programme_id, starts_on, ends_on, label FROM module_runs"
    ):
        runs[run_id] = ModuleRunInfo(
            run_id,
            institution or default_institution,
            programme,
            starts.toordinal() if starts else None,
            ends.toordinal() if ends else None,
            label=label,
        )

    def run(run_id: str) -> ModuleRunInfo:
        found = runs.get(run_id)
        if found is None:
            found = runs[run_id] = ModuleRunInfo(run_id, default_institution)
        return found

    for assignment_id, run_id, due, title in conn.execute(
        "SELECT assignment_id, module_run_id, (due_at AT TIME ZONE %(tz)s)::date, title FROM assignments", params
    ):
        run(run_id).assignments.append(Assignment(assignment_id, due.toordinal(), title))
    for session_id, run_id, starts_at in conn.execute(
        "SELECT session_id, module_run_id, starts_at FROM scheduled_sessions WHERE starts_at < %(end)s"
        # Sessions seen only in attendance, or in a withdrawal (a student marked absent): they were held.
        " UNION ALL SELECT session_id::text, min(module_run_id), min(session_starts_at) FROM"
        " (SELECT session_id, module_run_id, session_starts_at FROM attendance UNION ALL"
        "  SELECT session_id, module_run_id, session_starts_at FROM attendance_withdrawals) AS seen"
        " WHERE session_starts_at < %(end)s AND session_id::text NOT IN (SELECT session_id FROM scheduled_sessions)"
        " GROUP BY session_id",
        params,
    ):
        local_day = starts_at.astimezone(zoneinfo.ZoneInfo(params["tz"])).date()
        run(run_id).sessions.append(ExpectedSession(session_id, local_day.toordinal(), starts_at.timestamp()))
    return runs


def _activity(conn: psycopg.Connection[Any], params: dict[str, Any], only: str, student: Any) -> None:
    # Days travel as ordinals (days since 1 January of year 1, plus one), cheaper to read than dates. Rows come in
    # no particular order: sorting millions of them would cost more than placing each day in its short list.
    session_day = _ORDINAL.format("(session_starts_at AT TIME ZONE %(tz)s)::date")
    query = (
        f"SELECT student_pseudonym, module_run_id, {_ORDINAL.format('day')}, amount, sources::int8 FROM daily_activity"
        f" WHERE day >= %(first_day)s AND day <= %(last_day)s{only}"
        f" UNION ALL SELECT student_pseudonym, module_run_id, {session_day},"
        f" count(*), {SOURCE_BITS['attendance']} FROM attendance"
        f" WHERE session_starts_at >= %(start)s AND session_starts_at < %(end)s{only} GROUP BY 1, 2, 3"
    )
    # A server-side cursor, read in batches: tens of thousands of students' days are never all in memory twice.
    with conn.transaction(), conn.cursor(name="daily_activity") as cur:
        cur.execute(query, params, binary=True)
        current_key: tuple[str, str] | None = None
        activity = None
        while rows := cur.fetchmany(_BATCH_ROWS):
            for pseudonym, run_id, day, amount, mask in rows:
                if (pseudonym, run_id) != current_key:
                    current_key = (pseudonym, run_id)
                    activity = student(pseudonym, run_id).run(run_id).activity
                assert activity is not None
                activity.add(day, amount, mask)
