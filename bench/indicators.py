"""Indicators' figures:
- indicators.oulad_ingest_s: OULAD AAA 2013J from its CSV files (180,982 click rows, registrations, deadlines,
  submissions) ingested through the real importer into a fresh database, and indicators recomputed for the day the
  presentation ended (target: under 20 s);
- indicators.recompute_30k_s: recomputing features and flags for 30,000 students on 250 module runs over a 12-week
  term (daily activity, weekly teaching sessions with attendance, three assignments per run), from a database where
  none has been computed yet (target: under 30 s).
Identity is an in-process stand-in (bench/indicators_oulad.py), so the figures are indicators' own work.
"""

from __future__ import annotations

import random
import statistics
import time
import uuid
from datetime import UTC, date, datetime, timedelta
from datetime import time as clock_time

import psycopg
from psycopg_pool import ConnectionPool

from bench.environment import BenchEnvironment
from bench.indicators_oulad import (
    INSTITUTION,
    OULAD,
    PRESENTATION_STARTS_ON,
    StandInIdentity,
    default_rules,
    scratch_database,
)
from tend_indicators.activity import SOURCE_BITS
from tend_indicators.ingest import oulad
from tend_indicators.recompute import RecomputeOptions, recompute
from tend_indicators.rules_config import parse_rules_config

RUNS = 3
STUDENTS = 30_000
PER_RUN = 120
TERM_STARTS = date(2026, 9, 28)
TERM_WEEKS = 12
ASSIGNMENT_WEEKS = (4, 8, 11)
_COMPUTED = (
    "flags", "case_entries", "case_staff", "case_actions", "case_enquiries", "cases", "case_event_outbox",
    "cohort_weeks", "cohort_summaries", "recompute_runs",
)  # fmt: skip


def oulad_ingest() -> float:
    identity = StandInIdentity()
    options = oulad.OuladOptions(presentation_starts_on=PRESENTATION_STARTS_ON, institution_id=INSTITUTION)
    with scratch_database("indicators_bench") as dsn, ConnectionPool(dsn, min_size=1, max_size=4) as pool:
        started = time.perf_counter()
        presentation = oulad.read_presentation(OULAD)
        importer = oulad.OuladImporter(presentation, options, identity)
        imported = importer.import_all(pool)
        end = PRESENTATION_STARTS_ON + timedelta(days=presentation.length_days)
        recompute(pool, identity, default_rules(), RecomputeOptions(default_institution=INSTITUTION), end)
        seconds = time.perf_counter() - started
    assert imported.clicks == 180_982
    return seconds


def _generate(dsn: str) -> None:
    """30,000 students on 250 module runs: most active on most days, some fading, some quiet from the start."""
    rng = random.Random(30_000)
    runs = [f"bench-run-{n:03d}" for n in range(STUDENTS // PER_RUN)]
    with psycopg.connect(dsn) as conn, conn.cursor() as cur:
        sessions = _reference(cur, runs)
        _activity(cur, runs, rng)
        _submissions_and_attendance(cur, runs, sessions, rng)
        conn.commit()


def _pseudonym(n: int) -> str:
    return f"p_bench{n:05d}"


def _reference(cur: psycopg.Cursor[tuple[object, ...]], runs: list[str]) -> dict[str, list[tuple[str, datetime]]]:
    term_end = TERM_STARTS + timedelta(weeks=TERM_WEEKS) - timedelta(days=1)
    with cur.copy("COPY module_runs (module_run_id, institution_id, starts_on, ends_on) FROM STDIN") as copy:
        for run in runs:
            copy.write_row((run, "bench", TERM_STARTS, term_end))
    with cur.copy("COPY assignments (assignment_id, module_run_id, due_at) FROM STDIN") as copy:
        for run in runs:
            for week in ASSIGNMENT_WEEKS:
                copy.write_row((f"{run}-a{week}", run, _at(TERM_STARTS + timedelta(weeks=week, days=4), 23)))
    sessions = {
        run: [(str(uuid.uuid4()), _at(TERM_STARTS + timedelta(weeks=w, days=1), 10)) for w in range(TERM_WEEKS)]
        for run in runs
    }
    with cur.copy("COPY scheduled_sessions (session_id, module_run_id, starts_at) FROM STDIN") as copy:
        for run, held in sessions.items():
            for session_id, starts_at in held:
                copy.write_row((session_id, run, starts_at))
    with cur.copy("COPY enrolments (module_run_id, student_pseudonym, registered_on) FROM STDIN") as copy:
        for n in range(STUDENTS):
            copy.write_row((runs[n // PER_RUN], _pseudonym(n), TERM_STARTS - timedelta(days=7)))
    with cur.copy("COPY students (student_pseudonym, institution_id, sponsored_visa) FROM STDIN") as copy:
        for n in range(STUDENTS):
            copy.write_row((_pseudonym(n), "bench", n % 10 == 0))
    return sessions


def _activity(cur: psycopg.Cursor[tuple[object, ...]], runs: list[str], rng: random.Random) -> None:
    days = [TERM_STARTS + timedelta(days=d) for d in range(TERM_WEEKS * 7)]
    vle = SOURCE_BITS["vle"]
    with cur.copy("COPY daily_activity (student_pseudonym, module_run_id, day, amount, sources) FROM STDIN") as copy:
        for n in range(STUDENTS):
            kind = rng.random()
            fades_after = rng.randrange(20, 80) if kind < 0.1 else len(days)
            rate = 0.1 if kind > 0.95 else rng.uniform(0.3, 0.85)
            for day in days[:fades_after]:
                if day.weekday() < 6 and rng.random() < rate:
                    copy.write_row((_pseudonym(n), runs[n // PER_RUN], day, rng.randrange(1, 60), vle))


def _submissions_and_attendance(
    cur: psycopg.Cursor[tuple[object, ...]],
    runs: list[str],
    sessions: dict[str, list[tuple[str, datetime]]],
    rng: random.Random,
) -> None:
    columns = "event_key, student_pseudonym, module_run_id, source, activity, occurred_at, amount, object_ref"
    with cur.copy(f"COPY engagement_events ({columns}) FROM STDIN") as copy:
        for n in range(STUDENTS):
            run = runs[n // PER_RUN]
            for week in ASSIGNMENT_WEEKS:
                if rng.random() < 0.9:
                    submitted = _at(TERM_STARTS + timedelta(weeks=week, days=3), 12)
                    copy.write_row(
                        (uuid.uuid4(), _pseudonym(n), run, "assignment", "submitted", submitted, 1, f"{run}-a{week}")
                    )
    columns = "session_id, student_pseudonym, module_run_id, session_starts_at, recorded_at, source, event_id"
    with cur.copy(f"COPY attendance ({columns}) FROM STDIN") as copy:
        for n in range(STUDENTS):
            run = runs[n // PER_RUN]
            for session_id, starts_at in sessions[run]:
                if rng.random() < 0.8:
                    copy.write_row((session_id, _pseudonym(n), run, starts_at, starts_at, "code", uuid.uuid4().hex))


def _at(day: date, hour: int) -> datetime:
    return datetime.combine(day, clock_time(hour), UTC)


def recompute_30k(dsn: str) -> list[float]:
    _generate(dsn)
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("ANALYZE")
    term = {"starts_on": str(TERM_STARTS), "ends_on": str(TERM_STARTS + timedelta(weeks=TERM_WEEKS))}
    config = parse_rules_config({"institutions": {"bench": {"calendar": {"terms": [term]}}}})
    as_of = TERM_STARTS + timedelta(weeks=TERM_WEEKS) - timedelta(days=1)
    times = []
    with ConnectionPool(dsn, min_size=1, max_size=4) as pool:
        for _ in range(RUNS):
            with pool.connection() as conn:
                conn.execute(f"TRUNCATE {', '.join(_COMPUTED)}")
            started = time.perf_counter()
            result = recompute(pool, StandInIdentity(), config, RecomputeOptions(default_institution="bench"), as_of)
            times.append(time.perf_counter() - started)
            assert result.students == STUDENTS
            print(f"    recompute: {result.students} students, {result.raised} flags raised in {times[-1]:.1f} s")
    return times


def run(_environment: BenchEnvironment) -> dict[str, float]:
    # Databases of its own (not the environment's bench_* ones), dropped as soon as each figure is measured.
    ingest = [oulad_ingest() for _ in range(RUNS)]
    with scratch_database("indicators_bench") as dsn:
        recomputes = recompute_30k(dsn)
    return {
        "indicators.oulad_ingest_s": statistics.median(ingest),
        "indicators.recompute_30k_s": statistics.median(recomputes),
    }
