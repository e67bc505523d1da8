"""No engagement for 14 consecutive term days (the seeds' first criterion): breaks in the term calendar, days
outside a term and days before the student registered are not counted."""

from __future__ import annotations

from tend_indicators.activity import NO_MODULE_RUN, DailyActivity, StudentHistory, source_mask
from tend_indicators.calendar import iso, readable
from tend_indicators.rules.findings import Context, Finding, behind_with_work, cohort_phrase

RULE = "no_engagement"


def counting_start(student: StudentHistory, context: Context, as_of: int) -> int | None:
    """The first day the student is expected to engage, as of `as_of`; None when not registered on any module run
    that day (or nothing says when expectations began)."""
    runs = student.registered_runs(as_of)
    if not runs:
        return None
    bounds = []
    term_start = context.calendar.term_start_before(as_of)
    if term_start is not None:
        bounds.append(term_start)
    if all(run.registered_on is not None for run in runs):
        bounds.append(min(run.registered_on for run in runs if run.registered_on is not None))
    run_starts = [info.starts_on for run in runs if (info := context.runs.get(run.module_run_id)) is not None]
    if run_starts and all(start is not None for start in run_starts):
        bounds.append(min(start for start in run_starts if start is not None))
    if not bounds:
        first = student.combined_activity().first_active()
        return first
    return max(bounds)


def inactive_days(student: StudentHistory, activity: DailyActivity, context: Context, as_of: int) -> tuple[int, int]:
    """(counted days without engagement up to `as_of`, the first such day); (0, as_of + 1) when active that day."""
    start = counting_start(student, context, as_of)
    if start is None or start > as_of:
        return 0, as_of + 1
    last = activity.last_active_on_or_before(as_of, source_mask(context.rules.no_engagement.sources))
    first_inactive = start if last is None or last < start else last + 1
    return context.calendar.count_between(first_inactive, as_of), first_inactive


def evaluate(student: StudentHistory, activity: DailyActivity, context: Context, as_of: int) -> list[Finding]:
    rule = context.rules.no_engagement
    if not rule.enabled:
        return []
    counted, first_inactive = inactive_days(student, activity, context, as_of)
    if counted < rule.days:
        return []
    if rule.corroborated and behind_with_work(student, context, as_of) is False:
        return []
    calendar = context.calendar
    episode_day = first_inactive
    while not calendar.counts(episode_day):
        episode_day += 1
    last = activity.last_active_on_or_before(as_of, source_mask(rule.sources))
    sources = "any source" if not rule.sources else ", ".join(rule.sources)
    since = f"since {readable(last)}" if last is not None else f"since counting began on {readable(episode_day)}"
    not_counted = calendar.break_names_between(episode_day, as_of)
    breaks = f" ({' and '.join(not_counted)} not counted)" if not_counted else ""
    context_text = ""
    runs = sorted(run.module_run_id for run in student.registered_runs(as_of) if run.module_run_id != NO_MODULE_RUN)
    if runs and runs[0] in context.inactive_counts:
        inactive, evaluated = context.inactive_counts[runs[0]]
        context_text = cohort_phrase(inactive, evaluated, context.minimum_cohort_size, context.runs.get(runs[0]))
    sentence = (
        f"No engagement recorded from {sources} for {counted} consecutive term days {since}{breaks}, against a"
        f" threshold of {rule.days} days{context_text}."
    )
    return [
        Finding(
            rule=RULE,
            module_run_id=NO_MODULE_RUN,
            episode=iso(episode_day),
            window_starts_on=episode_day,
            window_ends_on=as_of,
            values={"inactive_days": counted, "threshold_days": rule.days, "calendar_days": as_of - episode_day + 1},
            sentence=sentence,
        )
    ]
