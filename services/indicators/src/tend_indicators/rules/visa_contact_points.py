"""A sponsored-visa student missed the configured number of expected contact points (teaching sessions of the module
runs they are registered on) in a row: the long-standing sponsor rule, 10 by default."""

from __future__ import annotations

from collections.abc import Mapping

from tend_indicators.activity import NO_MODULE_RUN, ExpectedSession, ModuleRunInfo, StudentHistory
from tend_indicators.calendar import readable
from tend_indicators.rules.findings import Context, Finding

RULE = "visa_contact_points"


def expected_sessions(
    student: StudentHistory, runs: Mapping[str, ModuleRunInfo], as_of: int
) -> list[tuple[ExpectedSession, bool]]:
    """The student's expected contact points up to `as_of`, in time order, each with whether they attended."""
    sessions = []
    for history in student.runs.values():
        info = runs.get(history.module_run_id)
        if info is None or history.module_run_id == NO_MODULE_RUN:
            continue
        for session in info.sessions:
            if session.day <= as_of and history.registered_during(session.day):
                sessions.append((session, session.session_id in history.attended))
    sessions.sort(key=lambda item: (item[0].starts_at, item[0].session_id))
    return sessions


def evaluate(student: StudentHistory, context: Context, as_of: int) -> list[Finding]:
    rule = context.rules.visa_contact_points
    if not rule.enabled or not student.sponsored_visa:
        return []
    sessions = expected_sessions(student, context.runs, as_of)
    missed: list[ExpectedSession] = []
    for session, attended in reversed(sessions):
        if attended:
            break
        missed.append(session)
    if len(missed) < rule.consecutive:
        return []
    missed.reverse()
    attended_total = sum(1 for _s, attended in sessions if attended)
    sentence = (
        f"Missed {len(missed)} expected contact points in a row (teaching sessions from {readable(missed[0].day)} to"
        f" {readable(missed[-1].day)}), reaching the sponsor rule's threshold of {rule.consecutive}, with"
        f" {attended_total} of {len(sessions)} expected contact points attended so far."
    )
    return [
        Finding(
            rule=RULE,
            module_run_id=NO_MODULE_RUN,
            episode=missed[0].session_id,
            window_starts_on=missed[0].day,
            window_ends_on=missed[-1].day,
            values={
                "missed_in_a_row": len(missed),
                "threshold": rule.consecutive,
                "attended": attended_total,
                "expected": len(sessions),
            },
            sentence=sentence,
        )
    ]
