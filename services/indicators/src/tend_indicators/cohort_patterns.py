"""Anonymised cohort patterns per module run, computed by each recompute and stored as aggregates only: weekly
activity quartiles and the share active, the median attendance rate, the submission rate, the share flagged.
Cohorts smaller than the minimum size are suppressed where they are computed: nothing of them is stored but their
size."""

from __future__ import annotations

import statistics
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date
from typing import Any

import psycopg

from tend_indicators.activity import NO_MODULE_RUN, ModuleRunInfo, RunHistory, StudentHistory
from tend_indicators.calendar import TermCalendar, completed_mondays
from tend_indicators.cohort import quantile, weekly_amount
from tend_indicators.rules.visa_contact_points import expected_sessions


@dataclass(frozen=True)
class WeekPattern:
    monday: int
    students: int
    active_share: float
    lower_quartile: float
    median: float
    upper_quartile: float
    in_break: bool


@dataclass(frozen=True)
class RunPattern:
    module_run_id: str
    cohort_size: int
    weeks: list[WeekPattern]
    median_attendance_rate: float | None
    submission_rate: float | None
    # Pseudonyms of the students registered now: only to compute the share flagged, never stored.
    members: frozenset[str] = frozenset()

    @property
    def suppressed(self) -> bool:
        return not self.members


def attendance_rate(
    student: StudentHistory, run_id: str, runs: dict[str, ModuleRunInfo], as_of: int
) -> tuple[int, int]:
    """(attended, expected) contact points of one module run up to `as_of`."""
    only_run = StudentHistory(student.pseudonym, student.institution, runs={run_id: student.runs[run_id]})
    sessions = expected_sessions(only_run, runs, as_of)
    return sum(1 for _s, attended in sessions if attended), len(sessions)


def submissions(history: RunHistory, run: ModuleRunInfo, as_of: int) -> tuple[int, int]:
    """(submitted, expected) assignments whose deadline has passed by `as_of`."""
    due = [a for a in run.assignments if a.due_on <= as_of and history.registered_during(a.due_on)]
    return sum(1 for a in due if a.assignment_id in history.submissions), len(due)


def run_pattern(
    run: ModuleRunInfo,
    students: Iterable[StudentHistory],
    runs: dict[str, ModuleRunInfo],
    calendar: TermCalendar,
    first_day: int,
    as_of: int,
    minimum: int,
) -> RunPattern:
    members = [s for s in students if run.module_run_id in s.runs]
    current = [s for s in members if s.runs[run.module_run_id].registered_during(as_of)]
    size = len(current)
    if size < minimum or run.module_run_id == NO_MODULE_RUN:
        return RunPattern(run.module_run_id, size, [], None, None)
    end = min(as_of, run.ends_on) if run.ends_on is not None else as_of
    weeks = []
    for monday in completed_mondays(max(first_day, run.starts_on or first_day), end):
        histories = [
            s.runs[run.module_run_id]
            for s in members
            if s.runs[run.module_run_id].registered_during(monday)
            and s.runs[run.module_run_id].registered_during(monday + 6)
        ]
        if len(histories) < minimum:
            continue
        amounts = sorted(weekly_amount(h, monday) for h in histories)
        active = sum(1 for h in histories if h.activity.active_days_between(monday, monday + 6) > 0)
        weeks.append(
            WeekPattern(
                monday,
                len(histories),
                active / len(histories),
                quantile(amounts, 0.25),
                quantile(amounts, 0.5),
                quantile(amounts, 0.75),
                not calendar.counted_week(monday),
            )
        )
    rates = []
    submitted = expected = 0
    for student in current:
        attended, sessions = attendance_rate(student, run.module_run_id, runs, as_of)
        if sessions:
            rates.append(attended / sessions)
        done, due = submissions(student.runs[run.module_run_id], run, as_of)
        submitted += done
        expected += due
    return RunPattern(
        run.module_run_id,
        size,
        weeks,
        statistics.median(rates) if len(rates) >= minimum else None,
        submitted / expected if expected else None,
        frozenset(s.pseudonym for s in current),
    )


def store_patterns(
    cursor: psycopg.Cursor[Any], patterns: Iterable[RunPattern], flagged: set[tuple[str, str]], as_of: date
) -> None:
    """Replaces each run's stored patterns. `flagged` holds (pseudonym, module run) of standing flags, the module run
    "" for flags about the student as a whole."""
    for pattern in patterns:
        cursor.execute("DELETE FROM cohort_weeks WHERE module_run_id = %s", (pattern.module_run_id,))
        cursor.executemany(
            "INSERT INTO cohort_weeks (module_run_id, week_starts_on, students, active_share, lower_quartile, median,"
            " upper_quartile, in_break) VALUES (%s, %s, %s, %s, %s, %s, %s, %s)",
            [
                (
                    pattern.module_run_id,
                    date.fromordinal(w.monday),
                    w.students,
                    w.active_share,
                    w.lower_quartile,
                    w.median,
                    w.upper_quartile,
                    w.in_break,
                )
                for w in pattern.weeks
            ],
        )
        share = None
        if not pattern.suppressed:
            hit = {p for p in pattern.members if (p, pattern.module_run_id) in flagged or (p, NO_MODULE_RUN) in flagged}
            share = len(hit) / len(pattern.members)
        cursor.execute(
            "INSERT INTO cohort_summaries (module_run_id, as_of, cohort_size, median_attendance_rate, submission_rate,"
            " flagged_share) VALUES (%s, %s, %s, %s, %s, %s) ON CONFLICT (module_run_id) DO UPDATE SET"
            " as_of = EXCLUDED.as_of, cohort_size = EXCLUDED.cohort_size,"
            " median_attendance_rate = EXCLUDED.median_attendance_rate, submission_rate = EXCLUDED.submission_rate,"
            " flagged_share = EXCLUDED.flagged_share",
            (
                pattern.module_run_id,
                as_of,
                pattern.cohort_size,
                pattern.median_attendance_rate,
                pattern.submission_rate,
                share,
            ),
        )
