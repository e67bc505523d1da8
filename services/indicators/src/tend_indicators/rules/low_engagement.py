"""Persistent or repeated low engagement relative to the cohort: in most of the last few term weeks the student's
activity on a module run was among the lowest of its cohort (and well below the cohort's median)."""

from __future__ import annotations

from tend_indicators.activity import ModuleRunInfo, RunHistory, StudentHistory
from tend_indicators.calendar import iso, readable
from tend_indicators.cohort import Cohort
from tend_indicators.rules.findings import Context, Finding, behind_with_work, run_name
from tend_indicators.rules.weekly import comparable_weeks, current_episode, figures

RULE = "low_engagement"


def evaluate(
    student: StudentHistory,
    history: RunHistory,
    run: ModuleRunInfo,
    cohort: Cohort,
    context: Context,
    as_of: int,
) -> list[Finding]:
    rule = context.rules.low_engagement
    if not rule.enabled or (rule.corroborated and behind_with_work(student, context, as_of) is False):
        return []
    weeks = comparable_weeks(history, cohort, as_of)
    low = [
        amount <= week.quantile(rule.quantile) and amount < rule.max_share_of_median * week.median
        for _monday, amount, week in weeks
    ]
    conditions = []
    for index, (monday, _amount, _week) in enumerate(weeks):
        window = low[max(0, index + 1 - rule.window_weeks) : index + 1]
        conditions.append((monday, len(window) == rule.window_weeks and sum(window) >= rule.low_weeks))
    episode = current_episode(conditions)
    if episode is None:
        return []
    recent = weeks[-rule.window_weeks :]
    low_count = sum(low[-rule.window_weeks :])
    first, last = recent[0][0], recent[-1][0]
    size = max(week.size for _m, _a, week in recent)
    sentence = (
        f"Activity on {run_name(run)} was among the lowest {round(rule.quantile * 100)}% of its cohort"
        f" of {size} students in {low_count} of the last {rule.window_weeks} term weeks (weeks starting"
        f" {readable(first)} to {readable(last)}), with weekly activity {figures([a for _m, a, _w in recent])} against"
        f" cohort medians {figures([round(w.median, 1) for _m, _a, w in recent])}."
    )
    return [
        Finding(
            rule=RULE,
            module_run_id=run.module_run_id,
            episode=iso(episode),
            window_starts_on=first,
            window_ends_on=last + 6,
            values={
                "low_weeks": low_count,
                "window_weeks": rule.window_weeks,
                "threshold_low_weeks": rule.low_weeks,
                "quantile": rule.quantile,
                "cohort_size": size,
            },
            sentence=sentence,
        )
    ]
