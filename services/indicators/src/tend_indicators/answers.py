"""The answers of the gRPC API, built from the database: a staff member's cases, one student's engagement summary,
a module run's cohort patterns. Nothing here decides who may see what; the servicer asks identity first."""

from __future__ import annotations

import uuid
import zoneinfo
from collections import defaultdict
from collections.abc import Sequence
from datetime import UTC, date, datetime
from typing import Any

import psycopg
from tend.indicators.v1 import indicators_pb2

from tend_common.messaging.envelope import timestamp
from tend_indicators.activity import NO_MODULE_RUN, ModuleRunInfo, StudentHistory
from tend_indicators.calendar import iso, monday_of
from tend_indicators.cohort_patterns import attendance_rate, submissions
from tend_indicators.history_store import load_population
from tend_indicators.recompute import RecomputeOptions
from tend_indicators.rules.engine import Evaluator
from tend_indicators.rules_config import RulesConfig

# The last column is the module run's label (a course fact from the reference data), so a page can name the run.
_FLAG_COLUMNS = (
    "flag_id, rule, module_run_id, status, sentence, window_starts_on, window_ends_on, evidence, raised_at,"
    " withdrawn_at, withdrawn_reason,"
    " (SELECT r.label FROM module_runs r WHERE r.module_run_id = flags.module_run_id)"
)
VISA_RULES = frozenset({"visa_contact_points"})


def _flag(row: Sequence[Any]) -> indicators_pb2.Flag:
    flag_id, rule, run_id, status, sentence, starts, ends, evidence, raised_at, withdrawn_at, reason, label = row
    message = indicators_pb2.Flag(
        flag_id=str(flag_id),
        rule=rule,
        module_run_id=run_id,
        status=indicators_pb2.FLAG_STATUS_RAISED if status == "raised" else indicators_pb2.FLAG_STATUS_WITHDRAWN,
        sentence=sentence,
        window_starts_on=starts.isoformat(),
        window_ends_on=ends.isoformat(),
        values={k: float(v) for k, v in evidence.get("values", {}).items() if isinstance(v, (int, float))},
        raised_at=timestamp(raised_at),
        withdrawn_reason=reason or "",
        module_run_label=label or "",
    )
    if withdrawn_at is not None:
        message.withdrawn_at.CopyFrom(timestamp(withdrawn_at))
    return message


def cases_for_staff(
    conn: psycopg.Connection[Any], person_id: str, visible: frozenset[str], include_closed: bool
) -> list[indicators_pb2.Case]:
    """The cases routed to the person, for students they may see, most recently updated first."""
    statuses = ["open", "closed"] if include_closed else ["open"]
    cases = conn.execute(
        "SELECT c.case_id, c.student_pseudonym, c.status, c.opened_at, c.updated_at FROM cases c"
        " WHERE c.status = ANY(%s) AND c.student_pseudonym = ANY(%s)"
        " AND EXISTS (SELECT 1 FROM case_staff s WHERE s.case_id = c.case_id AND s.person_id = %s)"
        " ORDER BY c.updated_at DESC, c.case_id",
        (statuses, sorted(visible), person_id),
    ).fetchall()
    return _cases(conn, cases)


def case_routing(conn: psycopg.Connection[Any], case_id: uuid.UUID, person_id: str) -> tuple[str, bool] | None:
    """The case's student and whether the case is routed to the person; None if there is no such case."""
    row = conn.execute(
        "SELECT c.student_pseudonym,"
        " EXISTS (SELECT 1 FROM case_staff s WHERE s.case_id = c.case_id AND s.person_id = %s)"
        " FROM cases c WHERE c.case_id = %s",
        (person_id, case_id),
    ).fetchone()
    return (str(row[0]), bool(row[1])) if row else None


def case_by_id(conn: psycopg.Connection[Any], case_id: uuid.UUID) -> indicators_pb2.Case | None:
    """One case, whoever it is routed to (the caller has checked the person may act for its student)."""
    rows = conn.execute(
        "SELECT case_id, student_pseudonym, status, opened_at, updated_at FROM cases WHERE case_id = %s", (case_id,)
    ).fetchall()
    found = _cases(conn, rows)
    return found[0] if found else None


def _cases(conn: psycopg.Connection[Any], cases: list[tuple[Any, ...]]) -> list[indicators_pb2.Case]:
    ids = [row[0] for row in cases]
    staff: dict[uuid.UUID, list[indicators_pb2.CaseStaff]] = defaultdict(list)
    for case_id, staff_id, relationship in conn.execute(
        "SELECT case_id, person_id, relationship FROM case_staff WHERE case_id = ANY(%s) ORDER BY position", (ids,)
    ):
        staff[case_id].append(indicators_pb2.CaseStaff(person_id=staff_id, relationship=relationship))
    flags: dict[uuid.UUID, list[indicators_pb2.Flag]] = defaultdict(list)
    for row in conn.execute(
        f"SELECT case_id, {_FLAG_COLUMNS} FROM flags WHERE case_id = ANY(%s) ORDER BY raised_at DESC, flag_id", (ids,)
    ):
        flags[row[0]].append(_flag(row[1:]))
    history: dict[uuid.UUID, list[indicators_pb2.CaseEntry]] = defaultdict(list)
    for case_id, at, flag_id, text, person_id, enquiry in conn.execute(
        "SELECT case_id, at, flag_id, text, person_id, enquiry_request_id FROM case_entries WHERE case_id = ANY(%s)"
        " ORDER BY entry_id",
        (ids,),
    ):
        history[case_id].append(
            indicators_pb2.CaseEntry(
                at=timestamp(at),
                text=text,
                flag_id=str(flag_id or ""),
                enquiry_request_id=enquiry or "",
                actor_person_id=person_id or "",
            )
        )
    return [
        indicators_pb2.Case(
            case_id=str(case_id),
            student_pseudonym=pseudonym,
            status=indicators_pb2.CASE_STATUS_OPEN if status == "open" else indicators_pb2.CASE_STATUS_CLOSED,
            staff=staff[case_id],
            flags=flags[case_id],
            history=history[case_id],
            opened_at=timestamp(opened_at),
            updated_at=timestamp(updated_at),
        )
        for case_id, pseudonym, status, opened_at, updated_at in cases
    ]


def engagement_summary(
    conn: psycopg.Connection[Any],
    config: RulesConfig,
    options: RecomputeOptions,
    pseudonym: str,
    as_of: date,
    visa_only: bool,
) -> indicators_pb2.GetEngagementSummaryResponse:
    """The student's features per module run and their flags, as the student would see them too. For visa
    compliance only attendance against expected contact points, and the contact-points flags."""
    population = load_population(conn, as_of, options.timezone, options.default_institution, pseudonyms=[pseudonym])
    response = indicators_pb2.GetEngagementSummaryResponse(student_pseudonym=pseudonym, as_of=as_of.isoformat())
    student = population.students.get(pseudonym)
    if student is not None:
        evaluator = Evaluator(
            config, population.runs, {pseudonym: student}, as_of.toordinal(), options.minimum_cohort_size
        )
        sources = _sources(conn, pseudonym)
        cohorts = _cohorts(conn, list(student.runs))
        for run_id in sorted(student.runs):
            response.module_runs.append(
                _run_engagement(student, run_id, evaluator, population.runs, sources, cohorts, as_of, visa_only)
            )
    rules = sorted(VISA_RULES) if visa_only else None
    for row in conn.execute(
        f"SELECT {_FLAG_COLUMNS} FROM flags WHERE student_pseudonym = %s AND (%s::text[] IS NULL OR rule = ANY(%s))"
        " ORDER BY raised_at DESC, flag_id",
        (pseudonym, rules, rules),
    ):
        response.flags.append(_flag(row))
    return response


def _sources(conn: psycopg.Connection[Any], pseudonym: str) -> dict[str, list[indicators_pb2.SourceActivity]]:
    found: dict[str, list[indicators_pb2.SourceActivity]] = defaultdict(list)
    for run_id, source, last, records in conn.execute(
        "SELECT module_run_id, source, max(occurred_at), count(*) FROM engagement_events WHERE student_pseudonym = %s"
        " GROUP BY 1, 2 UNION ALL SELECT module_run_id, 'attendance', max(session_starts_at), count(*) FROM attendance"
        " WHERE student_pseudonym = %s GROUP BY 1 ORDER BY 1, 2",
        (pseudonym, pseudonym),
    ):
        found[run_id].append(
            indicators_pb2.SourceActivity(source=source, last_activity_at=timestamp(last), records=records)
        )
    return found


def _cohorts(conn: psycopg.Connection[Any], run_ids: list[str]) -> dict[str, indicators_pb2.CohortContext]:
    found: dict[str, indicators_pb2.CohortContext] = {}
    for run_id, size, attendance, median in conn.execute(
        "SELECT s.module_run_id, s.cohort_size, s.median_attendance_rate,"
        " (SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY w.median) FROM (SELECT median FROM cohort_weeks"
        "  WHERE module_run_id = s.module_run_id AND NOT in_break ORDER BY week_starts_on DESC LIMIT 4) AS w)"
        " FROM cohort_summaries s WHERE s.module_run_id = ANY(%s)",
        (run_ids,),
    ):
        suppressed = median is None
        found[run_id] = indicators_pb2.CohortContext(
            cohort_size=size,
            suppressed=suppressed,
            median_weekly_amount=0.0 if suppressed else float(median),
            median_attendance_rate=0.0 if suppressed or attendance is None else float(attendance),
        )
    return found


def _run_engagement(
    student: StudentHistory,
    run_id: str,
    evaluator: Evaluator,
    runs: dict[str, ModuleRunInfo],
    sources: dict[str, list[indicators_pb2.SourceActivity]],
    cohorts: dict[str, indicators_pb2.CohortContext],
    as_of: date,
    visa_only: bool,
) -> indicators_pb2.ModuleRunEngagement:
    history = student.runs[run_id]
    today = as_of.toordinal()
    known = runs.get(run_id)
    label = known.label if known is not None and known.label else ""
    entry = indicators_pb2.ModuleRunEngagement(module_run_id=run_id, module_run_label=label)
    if run_id != NO_MODULE_RUN:
        attended, expected = attendance_rate(student, run_id, runs, today)
        entry.sessions_attended, entry.sessions_expected = attended, expected
        entry.attendance_rate = attended / expected if expected else 0.0
    if visa_only:
        return entry
    entry.sources.extend(s for s in sources.get(run_id, []))
    last = history.activity.last_active_on_or_before(today)
    entry.days_since_any_engagement = today - last if last is not None else -1
    if run_id != NO_MODULE_RUN:
        run, calendar, first_day = evaluator.run_calendar(run_id)
        done, due = submissions(history, run, today)
        entry.assignments_submitted, entry.assignments_expected = done, due
        monday = monday_of(max(first_day, history.registered_on or first_day))
        while monday <= today:
            entry.weeks.append(
                indicators_pb2.WeekActivity(
                    week_starts_on=iso(monday),
                    amount=history.activity.amount_between(monday, monday + 6),
                    active_days=history.activity.active_days_between(monday, monday + 6),
                    in_break=not calendar.counted_week(monday),
                )
            )
            monday += 7
        if run_id in cohorts:
            entry.cohort.CopyFrom(cohorts[run_id])
    entry.recordings_watched = sum(s.records for s in sources.get(run_id, []) if s.source == "recording")
    return entry


def cohort_patterns(
    conn: psycopg.Connection[Any], module_run_id: str, minimum: int
) -> indicators_pb2.GetCohortPatternsResponse:
    response = indicators_pb2.GetCohortPatternsResponse(module_run_id=module_run_id, minimum_cohort_size=minimum)
    named = conn.execute("SELECT label FROM module_runs WHERE module_run_id = %s", (module_run_id,)).fetchone()
    response.module_run_label = named[0] if named and named[0] else ""
    summary = conn.execute(
        "SELECT cohort_size, median_attendance_rate, submission_rate, flagged_share FROM cohort_summaries"
        " WHERE module_run_id = %s",
        (module_run_id,),
    ).fetchone()
    if summary is None or summary[0] < minimum:
        response.cohort_size = summary[0] if summary else 0
        response.suppressed = True
        return response
    size, attendance, submitted, flagged = summary
    response.cohort_size = size
    response.median_attendance_rate = attendance or 0.0
    response.submission_rate = submitted or 0.0
    response.flagged_share = flagged or 0.0
    for week, students, active, lower, median, upper, in_break in conn.execute(
        "SELECT week_starts_on, students, active_share, lower_quartile, median, upper_quartile, in_break"
        " FROM cohort_weeks WHERE module_run_id = %s ORDER BY week_starts_on",
        (module_run_id,),
    ):
        response.weeks.append(
            indicators_pb2.CohortWeek(
                week_starts_on=week.isoformat(),
                students=students,
                active_share=active,
                lower_quartile=lower,
                median=median,
                upper_quartile=upper,
                in_break=in_break,
            )
        )
    return response


def today(timezone: str, now: datetime | None = None) -> date:
    """The day it is in the institution's time zone."""
    return (now or datetime.now(UTC)).astimezone(zoneinfo.ZoneInfo(timezone)).date()
