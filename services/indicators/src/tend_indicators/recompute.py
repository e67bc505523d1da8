"""Recomputing flags as of a day: every rule for every student, then the difference with the flags stored.

- A finding with no flag yet raises one: it opens the student's case (or joins their open case) and publishes
  IndicatorRaised and CaseUpdated through its outbox, in the same transaction.
- A standing flag found again keeps its id; its evidence is brought up to date (a gap grown longer).
- A standing flag not found today is checked as of the day it was raised: if the data now held (a late attendance
  mark, a resent file) no longer gives the same finding that day, the flag is withdrawn and its case says so; a
  case left with no standing flag closes itself, before anyone acted on it. A flag whose evidence still holds for
  its day stays: the student engaging again later does not erase that they had not.
- Open cases not yet routed are routed to the responsible staff identity names (personal tutor first). Identity is
  asked outside the transaction; if it does not answer, the cases wait for the next recompute.

Only one recompute runs at a time per database (an advisory lock); another caller finds it busy and returns.
"""

from __future__ import annotations

import logging
import time
from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

from psycopg_pool import ConnectionPool

from tend_indicators import case_store
from tend_indicators.activity import StudentHistory
from tend_indicators.calendar import iso
from tend_indicators.case_store import StoredFlag
from tend_indicators.case_writes import CaseWriter, add_staff, mark_routed
from tend_indicators.cohort_patterns import RunPattern, run_pattern, store_patterns
from tend_indicators.directory import Directory, DirectoryUnavailable
from tend_indicators.history_store import Population, load_population
from tend_indicators.rules.engine import Evaluator
from tend_indicators.rules.findings import Finding
from tend_indicators.rules_config import RulesConfig

log = logging.getLogger(__name__)

_LOCK_ID = 6_316_006
RULE_TITLES = {
    "no_engagement": "no engagement",
    "low_engagement": "persistent low engagement",
    "sudden_drop": "a sudden drop in engagement",
    "missed_assignment": "a missed assignment",
    "visa_contact_points": "missed expected contact points",
}


@dataclass(frozen=True)
class RecomputeOptions:
    timezone: str = "Europe/London"
    default_institution: str = "default"
    minimum_cohort_size: int = 10


@dataclass(frozen=True)
class RecomputeResult:
    as_of: date
    students: int
    raised: int
    withdrawn: int
    updated: int
    routed: int
    seconds: float
    busy: bool = False


def _evidence(finding: Finding) -> dict[str, Any]:
    return {
        "rule": finding.rule,
        "window": [iso(finding.window_starts_on), iso(finding.window_ends_on)],
        "values": dict(finding.values),
    }


def recompute(
    pool: ConnectionPool,
    directory: Directory,
    config: RulesConfig,
    options: RecomputeOptions,
    as_of: date,
    now: datetime | None = None,
) -> RecomputeResult:
    started = time.perf_counter()
    now = now or datetime.now(UTC)
    with pool.connection() as lock_conn:
        lock_conn.autocommit = True
        locked = lock_conn.execute("SELECT pg_try_advisory_lock(%s)", (_LOCK_ID,)).fetchone()
        if not locked or not locked[0]:
            return RecomputeResult(as_of, 0, 0, 0, 0, 0, 0.0, busy=True)
        try:
            return _recompute(pool, directory, config, options, as_of, now, started)
        finally:
            lock_conn.execute("SELECT pg_advisory_unlock(%s)", (_LOCK_ID,))


def _recompute(
    pool: ConnectionPool,
    directory: Directory,
    config: RulesConfig,
    options: RecomputeOptions,
    as_of: date,
    now: datetime,
    started: float,
) -> RecomputeResult:
    with pool.connection() as conn:
        population = load_population(conn, as_of, options.timezone, options.default_institution)
        stored = case_store.load_flags(conn)
    evaluator = Evaluator(config, population.runs, population.students, as_of.toordinal(), options.minimum_cohort_size)
    current: dict[tuple[str, str, str, str], Finding] = {}
    for student in population.students.values():
        for finding in evaluator.findings(student):
            current[(student.pseudonym, *finding.key)] = finding
    new = {key: f for key, f in current.items() if key not in stored or not stored[key].raised}
    changed = {
        key: f
        for key, f in current.items()
        if key in stored
        and stored[key].raised
        and (stored[key].sentence != f.sentence or stored[key].evidence != _evidence(f))
    }
    withdrawals = _withdrawals(evaluator, population, stored, current)
    with pool.connection() as conn, conn.transaction(), conn.cursor() as cur:
        writer = CaseWriter.load(conn, now)
        for key, finding in sorted(new.items()):
            window = (date.fromordinal(finding.window_starts_on), date.fromordinal(finding.window_ends_on))
            writer.raise_flag(key, window, finding.sentence, _evidence(finding), as_of, stored.get(key))
        for key, finding in changed.items():
            writer.update_evidence(
                stored[key], date.fromordinal(finding.window_ends_on), finding.sentence, _evidence(finding)
            )
        for flag, reason in withdrawals:
            writer.withdraw(flag, reason)
        writer.flush(cur)
        raised, withdrawn = len(new), len(withdrawals)
        cur.execute("SELECT DISTINCT student_pseudonym, module_run_id FROM flags WHERE status = 'raised'")
        flagged = {(row[0], row[1]) for row in cur.fetchall()}
        store_patterns(cur, _patterns(evaluator, population, options), flagged, as_of)
        cur.execute(
            "INSERT INTO recompute_runs (as_of, started_at, finished_at, students, raised, withdrawn)"
            " VALUES (%s, %s, now(), %s, %s, %s)",
            (as_of, now, len(population.students), raised, withdrawn),
        )
    routed = route_cases(pool, directory, now)
    result = RecomputeResult(
        as_of, len(population.students), raised, withdrawn, len(changed), routed, time.perf_counter() - started
    )
    log.info(
        "flags recomputed",
        extra={
            "fields": {
                "as_of": as_of.isoformat(),
                "students": result.students,
                "raised": raised,
                "withdrawn": withdrawn,
                "updated": result.updated,
                "routed": routed,
                "seconds": round(result.seconds, 3),
            }
        },
    )
    return result


def _patterns(evaluator: Evaluator, population: Population, options: RecomputeOptions) -> list[RunPattern]:
    members: dict[str, list[StudentHistory]] = defaultdict(list)
    for student in population.students.values():
        for module_run_id in student.runs:
            members[module_run_id].append(student)
    patterns = []
    for module_run_id in evaluator.module_run_ids:
        run, calendar, first_day = evaluator.run_calendar(module_run_id)
        patterns.append(
            run_pattern(
                run,
                members[module_run_id],
                population.runs,
                calendar,
                first_day,
                evaluator.as_of,
                options.minimum_cohort_size,
            )
        )
    return patterns


def _withdrawals(
    evaluator: Evaluator,
    population: Population,
    stored: dict[tuple[str, str, str, str], StoredFlag],
    current: dict[tuple[str, str, str, str], Finding],
) -> list[tuple[StoredFlag, str]]:
    withdrawals = []
    for key, flag in stored.items():
        if not flag.raised or key in current:
            continue
        student = population.students.get(flag.pseudonym)
        if student is None:
            continue  # nothing is known about the student any more; the flag's evidence is not contradicted
        then = flag.observed_on.toordinal()
        if then > evaluator.as_of:
            continue
        again = {f.key for f in evaluator.findings(student, as_of=then)}
        if (flag.module_run_id, flag.rule, flag.episode) not in again:
            reason = (
                f"With the data now held (a late attendance mark, a corrected or resent file), the rule no longer finds"
                f" {RULE_TITLES.get(flag.rule, flag.rule)} as of {flag.observed_on.isoformat()}; the flag is withdrawn."
            )
            withdrawals.append((flag, reason))
    return withdrawals


def route_cases(pool: ConnectionPool, directory: Directory, now: datetime) -> int:
    """Routes open cases that have no staff yet; returns how many were routed."""
    with pool.connection() as conn:
        waiting = case_store.unrouted_cases(conn)
    if not waiting:
        return 0
    try:
        staff = directory.responsible_staff([pseudonym for _case, pseudonym in waiting])
    except DirectoryUnavailable as exc:
        log.warning(
            "cases not routed yet; identity unavailable", extra={"fields": {"cases": len(waiting), "error": str(exc)}}
        )
        return 0
    pseudonyms = dict(waiting)
    with pool.connection() as conn, conn.transaction(), conn.cursor() as cur:
        marked = mark_routed(cur, [case_id for case_id, _pseudonym in waiting])
        routed = {case_id: staff.get(pseudonyms[case_id], []) for case_id in marked}
        add_staff(cur, routed)
        writer = CaseWriter(now)
        for case_id, responsible in routed.items():
            writer.route(case_id, pseudonyms[case_id], marked[case_id], responsible)
        writer.flush(cur)
    return len(marked)
