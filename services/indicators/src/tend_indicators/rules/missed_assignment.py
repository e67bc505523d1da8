"""An expected assignment missed: not submitted by its deadline plus a grace period for late submission. A
deadline missed by a student who had also not engaged with the module run for a while before it is flagged sooner,
after a shorter grace."""

from __future__ import annotations

from tend_indicators.activity import Assignment, ModuleRunInfo, RunHistory
from tend_indicators.calendar import readable
from tend_indicators.rules.findings import Context, Finding

RULE = "missed_assignment"


def _submitted_by(history: RunHistory, assignment: Assignment, day: int) -> bool:
    submitted = history.submissions.get(assignment.assignment_id)
    return submitted is not None and submitted <= day


def _check_day(history: RunHistory, assignment: Assignment, context: Context, as_of: int) -> tuple[int, bool] | None:
    """The day the assignment counts as missed, and whether by the early (quiet) check; None if not missed."""
    rule = context.rules.missed_assignment
    due = assignment.due_on
    if not history.registered_during(due):
        return None
    checks = []
    if rule.quiet_days > 0 and rule.early_grace_days < rule.grace_days:
        early = due + rule.early_grace_days
        quiet_since = due - rule.quiet_days + 1
        if early <= as_of and not history.activity.active_between(quiet_since, early):
            checks.append((early, True))
    checks.append((due + rule.grace_days, False))
    for day, early_check in checks:
        if day <= as_of and history.registered_during(day) and not _submitted_by(history, assignment, day):
            return day, early_check
    return None


def _assignment_phrase(assignment: Assignment, run: ModuleRunInfo) -> str:
    """The assignment as a tutor knows it, by its title and module run's label when the reference data gives them;
    otherwise by its deadline. Never by id."""
    due = readable(assignment.due_on)
    where = f" ({run.label})" if run.label else ""
    if assignment.title:
        return f"{assignment.title}{where}, due {due},"
    return f"An assignment due {due}{where}"


def _cohort_share(members: list[RunHistory], assignment: Assignment, day: int) -> tuple[int, int]:
    expected = [m for m in members if m.registered_during(assignment.due_on) and m.registered_during(day)]
    return sum(1 for m in expected if _submitted_by(m, assignment, day)), len(expected)


def evaluate(
    history: RunHistory,
    run: ModuleRunInfo,
    context: Context,
    as_of: int,
    members: list[RunHistory] | None = None,
) -> list[Finding]:
    rule = context.rules.missed_assignment
    if not rule.enabled:
        return []
    findings = []
    due_so_far = [a for a in run.assignments if a.due_on <= as_of and history.registered_during(a.due_on)]
    submitted_so_far = sum(1 for a in due_so_far if a.assignment_id in history.submissions)
    for assignment in sorted(run.assignments, key=lambda a: (a.due_on, a.assignment_id)):
        missed = _check_day(history, assignment, context, as_of)
        if missed is None:
            continue
        day, early = missed
        if early:
            why = (
                f"within {rule.early_grace_days} days of its deadline, with no engagement with the module run in the"
                f" {rule.quiet_days} days before"
            )
        else:
            why = f"within the {rule.grace_days}-day grace period"
        cohort_text = ""
        if members is not None:
            key = (RULE, run.module_run_id, assignment.assignment_id, day)
            share = context.memo.get(key)
            if not isinstance(share, tuple):
                share = context.memo[key] = _cohort_share(members, assignment, day)
            submitted, expected = share
            if expected >= context.minimum_cohort_size:
                cohort_text = f", and {submitted} of the {expected} students on the module run had submitted it by then"
        sentence = (
            f"{_assignment_phrase(assignment, run)} was not submitted {why}, with {submitted_so_far} of"
            f" {len(due_so_far)} assignments due so far submitted{cohort_text}."
        )
        findings.append(
            Finding(
                rule=RULE,
                module_run_id=run.module_run_id,
                episode=assignment.assignment_id,
                window_starts_on=assignment.due_on,
                window_ends_on=day,
                values={
                    "grace_days": rule.early_grace_days if early else rule.grace_days,
                    "assignments_due": len(due_so_far),
                    "assignments_submitted": submitted_so_far,
                },
                sentence=sentence,
            )
        )
    return findings
