"""A module run's cohort, week by week: each registered student's activity in each counted term week, and the
quantiles the rules compare a student with. Cohorts smaller than the minimum size are never compared with."""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from tend_indicators.activity import ModuleRunInfo, RunHistory
from tend_indicators.calendar import TermCalendar, completed_mondays


def quantile(sorted_values: Sequence[float], q: float) -> float:
    """Linear interpolation between closest ranks (the common "type 7" definition)."""
    if not sorted_values:
        return 0.0
    position = q * (len(sorted_values) - 1)
    lower = math.floor(position)
    upper = math.ceil(position)
    return sorted_values[lower] + (sorted_values[upper] - sorted_values[lower]) * (position - lower)


@dataclass
class CohortWeek:
    monday: int
    # Weekly amounts of the students registered that week, sorted.
    amounts: list[int] = field(default_factory=list)
    _quantiles: dict[float, float] = field(default_factory=dict, repr=False)

    @property
    def size(self) -> int:
        return len(self.amounts)

    def quantile(self, q: float) -> float:
        known = self._quantiles.get(q)
        if known is None:
            known = self._quantiles[q] = quantile(self.amounts, q)
        return known

    @property
    def median(self) -> float:
        return self.quantile(0.5)


@dataclass
class Cohort:
    """Counted weeks of one module run up to the evaluation day, with each week's cohort."""

    module_run_id: str
    minimum_size: int
    weeks: dict[int, CohortWeek] = field(default_factory=dict)

    @property
    def size(self) -> int:
        return max((week.size for week in self.weeks.values()), default=0)

    def comparable(self, monday: int) -> CohortWeek | None:
        """The week's cohort, if it is large enough to compare a student with."""
        week = self.weeks.get(monday)
        return week if week is not None and week.size >= self.minimum_size else None


def run_weeks(run: ModuleRunInfo, calendar: TermCalendar, first_day: int, as_of: int) -> list[int]:
    """Mondays of the module run's completed, counted term weeks from `first_day` to `as_of`."""
    start = max(first_day, run.starts_on) if run.starts_on is not None else first_day
    end = min(as_of, run.ends_on) if run.ends_on is not None else as_of
    return [monday for monday in completed_mondays(start, end) if calendar.counted_week(monday)]


def weekly_amount(history: RunHistory, monday: int) -> int:
    return history.week_amount(monday)


def build_cohort(
    run: ModuleRunInfo,
    members: Iterable[RunHistory],
    calendar: TermCalendar,
    first_day: int,
    as_of: int,
    minimum_size: int,
) -> Cohort:
    cohort = Cohort(run.module_run_id, minimum_size)
    mondays = run_weeks(run, calendar, first_day, as_of)
    for monday in mondays:
        cohort.weeks[monday] = CohortWeek(monday)
    for member in members:
        for monday in mondays:
            if member.registered_during(monday) and member.registered_during(monday + 6):
                cohort.weeks[monday].amounts.append(weekly_amount(member, monday))
    for week in cohort.weeks.values():
        week.amounts.sort()
    return cohort
