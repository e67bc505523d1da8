"""Shared by the weekly rules: the student's counted, comparable weeks, and the episode a weekly condition is in."""

from __future__ import annotations

from collections.abc import Sequence

from tend_indicators.activity import RunHistory
from tend_indicators.cohort import Cohort, CohortWeek, weekly_amount


def comparable_weeks(history: RunHistory, cohort: Cohort, as_of: int) -> list[tuple[int, int, CohortWeek]]:
    """(Monday, the student's amount, the cohort's week) for each completed counted week the student was registered
    for throughout and the cohort is large enough to compare with."""
    weeks = []
    for monday in sorted(cohort.weeks):
        if monday + 6 > as_of:
            break
        if not (history.registered_during(monday) and history.registered_during(monday + 6)):
            continue
        week = cohort.comparable(monday)
        if week is not None:
            weeks.append((monday, weekly_amount(history, monday), week))
    return weeks


def current_episode(conditions: Sequence[tuple[int, bool]]) -> int | None:
    """When the last week's condition holds, the Monday on which the current run of holding weeks began."""
    if not conditions or not conditions[-1][1]:
        return None
    index = len(conditions) - 1
    while index > 0 and conditions[index - 1][1]:
        index -= 1
    return conditions[index][0]


def figures(values: Sequence[float]) -> str:
    return ", ".join(f"{value:g}" for value in values)
