"""A sudden, significant drop against the student's own baseline. Both are measured as a share of the cohort's
median for the same weeks, so a week that is quiet for everyone (after a deadline, say) is not a drop."""

from __future__ import annotations

from tend_indicators.activity import ModuleRunInfo, RunHistory, StudentHistory
from tend_indicators.calendar import iso, readable
from tend_indicators.cohort import Cohort
from tend_indicators.rules.findings import Context, Finding, behind_with_work, run_name
from tend_indicators.rules.weekly import comparable_weeks, current_episode

RULE = "sudden_drop"


def evaluate(
    student: StudentHistory,
    history: RunHistory,
    run: ModuleRunInfo,
    cohort: Cohort,
    context: Context,
    as_of: int,
) -> list[Finding]:
    rule = context.rules.sudden_drop
    if not rule.enabled or (rule.corroborated and behind_with_work(student, context, as_of) is False):
        return []
    shares = [
        (monday, amount / week.median)
        for monday, amount, week in comparable_weeks(history, cohort, as_of)
        if week.median > 0
    ]
    span = rule.baseline_weeks + rule.recent_weeks
    conditions = []
    detail: tuple[float, float] = (0.0, 0.0)
    for index, (monday, _share) in enumerate(shares):
        if index + 1 < span:
            conditions.append((monday, False))
            continue
        window = [share for _m, share in shares[index + 1 - span : index + 1]]
        baseline = sum(window[: rule.baseline_weeks]) / rule.baseline_weeks
        recent = sum(window[rule.baseline_weeks :]) / rule.recent_weeks
        conditions.append((monday, baseline >= rule.min_baseline_share and recent <= rule.drop_to * baseline))
        detail = (baseline, recent)
    episode = current_episode(conditions)
    if episode is None:
        return []
    baseline, recent = detail
    recent_weeks = shares[-rule.recent_weeks :]
    first, last = recent_weeks[0][0], recent_weeks[-1][0]
    sentence = (
        f"Activity on {run_name(run)} fell to {round(recent * 100)}% of the cohort median over the"
        f" last {rule.recent_weeks} term weeks (weeks starting {readable(first)} to {readable(last)}) from"
        f" {round(baseline * 100)}% over the {rule.baseline_weeks} term weeks before, at or below the threshold of"
        f" {round(rule.drop_to * 100)}% of the student's own baseline (cohort of {cohort.size} students)."
    )
    return [
        Finding(
            rule=RULE,
            module_run_id=run.module_run_id,
            episode=iso(episode),
            window_starts_on=shares[-span][0],
            window_ends_on=last + 6,
            values={
                "recent_share_of_median": round(recent, 4),
                "baseline_share_of_median": round(baseline, 4),
                "drop_to": rule.drop_to,
                "cohort_size": cohort.size,
            },
            sentence=sentence,
        )
    ]
