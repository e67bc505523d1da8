"""The OULAD evaluation: replays presentation AAA 2013J day by day through the real ingest (the OULAD importer) and
the real recompute (rules, flags, cases), once with the default rule set and once with a naive "no click for 14
days" rule, and measures how well the flags anticipate withdrawal and failure.

Measured over the students still registered after day 14 (the others left before any rule could speak). A student
counts as flagged if a flag was raised between day 0 and the end of the presentation or their unregistration,
whichever came first:
- flagged_share: flagged students / students;
- recall_14d: withdrawn students flagged at least 14 days before they unregistered / withdrawn students;
- median_lead_days: median of (unregistration day - first flag day) over flagged withdrawn students;
- precision_withdrew_or_failed: flagged students who withdrew or failed / flagged students;
- alerts_per_100_student_weeks: flags raised per 100 weeks of registration (day 0 to the end or unregistration).
"""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass
from datetime import timedelta

from psycopg_pool import ConnectionPool

from bench.indicators_oulad import (
    INSTITUTION,
    OULAD,
    PRESENTATION_STARTS_ON,
    StandInIdentity,
    default_rules,
    naive_rules,
    read_csv,
    scratch_database,
)
from tend_indicators.ingest import oulad
from tend_indicators.recompute import RecomputeOptions, recompute
from tend_indicators.rules_config import RulesConfig

EXCLUDED_IF_UNREGISTERED_BY = 14
LEAD_DAYS = 14


@dataclass(frozen=True)
class Replay:
    # id_student -> (first flag day, rule)
    first_flags: dict[str, tuple[int, str]]
    # id_student -> flags raised
    alerts: dict[str, int]
    seconds: float


def replay(config: RulesConfig) -> Replay:
    """Imports the presentation day by day and recomputes after each day, as a deployment would."""
    presentation = oulad.read_presentation(OULAD)
    identity = StandInIdentity()
    options = oulad.OuladOptions(presentation_starts_on=PRESENTATION_STARTS_ON, institution_id=INSTITUTION)
    importer = oulad.OuladImporter(presentation, options, identity)
    recompute_options = RecomputeOptions(default_institution=INSTITUTION)
    started = time.perf_counter()
    with scratch_database("eval_indicators") as dsn, ConnectionPool(dsn, min_size=1, max_size=4) as pool:
        importer.import_days(pool, None, -1)  # what happened before the presentation began
        for day in range(presentation.length_days + 1):
            importer.import_days(pool, day, day)
            as_of = PRESENTATION_STARTS_ON + timedelta(days=day)
            recompute(pool, identity, config, recompute_options, as_of)
        with pool.connection() as conn:
            rows = conn.execute(
                "SELECT student_pseudonym, rule, observed_on FROM flags ORDER BY observed_on"
            ).fetchall()
    first: dict[str, tuple[int, str]] = {}
    alerts: dict[str, int] = {}
    for pseudonym, rule, observed_on in rows:
        student = identity.students_by_pseudonym[pseudonym]
        day = (observed_on - PRESENTATION_STARTS_ON).days
        first.setdefault(student, (day, rule))
        alerts[student] = alerts.get(student, 0) + 1
    return Replay(first, alerts, time.perf_counter() - started)


def measure(result: Replay) -> dict[str, float]:
    results = {row["id_student"]: row["final_result"] for row in read_csv("studentInfo.csv")}
    length = int(read_csv("courses.csv")[0]["module_presentation_length"])
    unregistered = {
        row["id_student"]: int(row["date_unregistration"])
        for row in read_csv("studentRegistration.csv")
        if row["date_unregistration"].strip()
    }
    students = [s for s in results if unregistered.get(s, length + 1) > EXCLUDED_IF_UNREGISTERED_BY]
    withdrawn = [s for s in students if results[s] == "Withdrawn"]

    def end(student: str) -> int:
        return min(length, unregistered.get(student, length))

    flagged = [s for s in students if s in result.first_flags and result.first_flags[s][0] <= end(s)]
    troubled = [s for s in flagged if results[s] in ("Withdrawn", "Fail")]
    early = [s for s in withdrawn if s in flagged and unregistered[s] - result.first_flags[s][0] >= LEAD_DAYS]
    leads = [unregistered[s] - result.first_flags[s][0] for s in withdrawn if s in flagged]
    student_weeks = sum((end(s) + 1) / 7 for s in students)
    alerts = sum(result.alerts.get(s, 0) for s in students)
    return {
        "students": len(students),
        "flagged": len(flagged),
        "flagged_share": len(flagged) / len(students),
        "recall_14d": len(early) / len(withdrawn),
        "median_lead_days": float(statistics.median(leads)) if leads else 0.0,
        "precision_withdrew_or_failed": len(troubled) / len(flagged) if flagged else 0.0,
        "alerts_per_100_student_weeks": 100 * alerts / student_weeks,
        "replay_s": result.seconds,
    }


def evaluate() -> dict[str, float]:
    """Both rule sets side by side; figures named oulad.<rule set>.<figure>."""
    figures: dict[str, float] = {}
    table: dict[str, dict[str, float]] = {}
    for name, config in (("default", default_rules()), ("naive", naive_rules())):
        print(f"  replaying AAA 2013J day by day with the {name} rule set...", flush=True)
        table[name] = measure(replay(config))
        figures.update({f"oulad.{name}.{key}": value for key, value in table[name].items()})
    print_table(table)
    return figures


def print_table(table: dict[str, dict[str, float]]) -> None:
    rows = [
        ("students (registered after day 14)", "students", "{:.0f}"),
        ("flagged at least once", "flagged", "{:.0f}"),
        ("share flagged", "flagged_share", "{:.1%}"),
        ("withdrawals flagged >= 14 days ahead", "recall_14d", "{:.1%}"),
        ("median lead time (days)", "median_lead_days", "{:.1f}"),
        ("precision for withdrew or failed", "precision_withdrew_or_failed", "{:.1%}"),
        ("alerts per 100 student-weeks", "alerts_per_100_student_weeks", "{:.2f}"),
    ]
    names = list(table)
    print(f"\n{'OULAD AAA 2013J':<40}" + "".join(f"{n:>12}" for n in names))
    for label, key, form in rows:
        print(f"{label:<40}" + "".join(f"{form.format(table[n][key]):>12}" for n in names))
    print()
