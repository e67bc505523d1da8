"""What a rule found: a flag's identity (rule, module run, episode) and its evidence."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from tend_indicators.activity import ModuleRunInfo, RunHistory, StudentHistory
from tend_indicators.calendar import TermCalendar
from tend_indicators.cohort import Cohort
from tend_indicators.rules_config import RuleSet


@dataclass(frozen=True)
class Finding:
    rule: str
    # The module run; "" for a rule about the student as a whole.
    module_run_id: str
    # Tells one occurrence of the rule apart from another (a day, an assignment id, a session id).
    episode: str
    window_starts_on: int
    window_ends_on: int
    values: Mapping[str, float]
    sentence: str

    @property
    def key(self) -> tuple[str, str, str]:
        return (self.module_run_id, self.rule, self.episode)


@dataclass
class Context:
    """What the rules need beside the student: module runs, the calendar, rule settings, cohorts."""

    calendar: TermCalendar
    rules: RuleSet
    runs: Mapping[str, ModuleRunInfo]
    cohorts: Mapping[str, Cohort] = field(default_factory=dict)
    # Per module run: how many registered students currently have no engagement for the rule's threshold or more,
    # and how many were evaluated; for the cohort context of the no-engagement rule.
    inactive_counts: Mapping[str, tuple[int, int]] = field(default_factory=dict)
    minimum_cohort_size: int = 10
    # Each module run's students, for figures about the cohort as a whole.
    members: Mapping[str, list[RunHistory]] = field(default_factory=dict)
    # Figures about a whole cohort that several students' findings repeat (computed once per evaluation).
    memo: dict[tuple[object, ...], object] = field(default_factory=dict)


def behind_with_work(student: StudentHistory, context: Context, as_of: int) -> bool | None:
    """Whether the student has, by `as_of`, not submitted an assignment within its grace period on a module run they
    are registered on; None when no assignment is expected of them at all (nothing can corroborate)."""
    grace = context.rules.missed_assignment.grace_days
    expected = False
    for history in student.registered_runs(as_of):
        run = context.runs.get(history.module_run_id)
        if run is None:
            continue
        for assignment in run.assignments:
            if not history.registered_during(assignment.due_on) and assignment.due_on <= as_of:
                continue
            expected = True
            checked = assignment.due_on + grace
            if checked > as_of:
                continue
            submitted = history.submissions.get(assignment.assignment_id)
            if submitted is None or submitted > checked:
                return True
    return False if expected else None


def run_name(run: ModuleRunInfo | None) -> str:
    """The module run as a tutor knows it: its label from the reference data, else a neutral phrase. Never its id,
    which means nothing to a person (often a UUID)."""
    return run.label if run is not None and run.label else "a module run"


def cohort_phrase(inactive: int, evaluated: int, minimum: int, run: ModuleRunInfo | None) -> str:
    """The cohort context of a gap, or "" when the cohort is too small to mention."""
    if evaluated < minimum:
        return ""
    share = round(100 * inactive / evaluated)
    return f", while {inactive} of the {evaluated} students on {run_name(run)} ({share}%) had such a gap"


__all__ = ["Context", "Finding", "StudentHistory"]
