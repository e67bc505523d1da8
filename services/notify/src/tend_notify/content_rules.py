"""What a supportive enquiry may say.

An enquiry is a person's offer of help. It never passes on what the indicators saw: no flags, no scores, no figures
about attendance or activity. Templates, a sender's edits and the rendered message are all checked by these rules,
and each problem is reported with the field, the line and the words that broke the rule, so the sender can fix it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

MAX_SUBJECT_LENGTH = 200
MAX_BODY_LENGTH = 10_000

# (rule, pattern, why): words that would pass on indicator data or the idea that the student was "flagged".
_FORBIDDEN: tuple[tuple[str, re.Pattern[str], str], ...] = (
    (
        "no_flags",
        re.compile(r"\bflag\w*", re.IGNORECASE),
        "an enquiry never says a student was flagged",
    ),
    (
        "no_indicator_terms",
        re.compile(
            r"\b(indicators?|risk|at-risk|scores?|dashboards?|analytics|algorithms?|engagement (?:data|levels?|rates?)"
            r"|low engagement|disengag\w*|monitor\w*|track(?:ed|ing)|attendance|absen(?:ce|ces|t)|clicks?|log-?ins?)\b",
            re.IGNORECASE,
        ),
        "an enquiry does not pass on what the engagement indicators recorded",
    ),
    (
        "no_activity_figures",
        re.compile(
            r"\b\d+(?:\.\d+)?\s*(?:%|per ?cent\b)"
            r"|\b\d+\s+out\s+of\s+\d+\b"
            r"|\b\d+\s+(?:of\s+(?:your|the)\s+)?(?:sessions?|lectures?|classes|seminars?|tutorials?|workshops?|labs?"
            r"|assignments?|submissions?|deadlines?)\b"
            r"|\b(?:last|past|previous|for|over|missed|since)\s+(?:the\s+)?(?:last\s+|past\s+)?\d+\s+"
            r"(?:consecutive\s+)?(?:days?|weeks?|months?)\b",
            re.IGNORECASE,
        ),
        "an enquiry does not quote figures about a student's activity",
    ),
)
# Control characters other than line breaks and tabs: they have no place in a letter and can smuggle headers.
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


@dataclass(frozen=True)
class Problem:
    """One broken rule, phrased for the person who can fix it."""

    field: str
    rule: str
    message: str

    def __str__(self) -> str:
        return f"{self.field}: {self.message}"


class ContentRejected(ValueError):
    """The text breaks one or more rules; `problems` lists each."""

    def __init__(self, problems: list[Problem]) -> None:
        super().__init__("; ".join(str(p) for p in problems))
        self.problems = problems


def _line_of(text: str, index: int) -> int:
    return text.count("\n", 0, index) + 1


def forbidden_words(field: str, text: str) -> list[Problem]:
    """Words that pass on indicator data, with the line each is on."""
    problems = []
    for rule, pattern, why in _FORBIDDEN:
        found: dict[str, int] = {}
        for match in pattern.finditer(text):
            found.setdefault(match.group(0), _line_of(text, match.start()))
        if found:
            words = ", ".join(f'"{word}" (line {line})' for word, line in found.items())
            problems.append(Problem(field, rule, f"{why}; remove {words}"))
    return problems


def check_subject(subject: str, field: str = "subject") -> list[Problem]:
    problems = []
    if not subject.strip():
        problems.append(Problem(field, "required", "a subject is required"))
    if len(subject) > MAX_SUBJECT_LENGTH:
        problems.append(Problem(field, "too_long", f"must be at most {MAX_SUBJECT_LENGTH} characters"))
    if "\n" in subject or "\r" in subject or _CONTROL.search(subject):
        problems.append(Problem(field, "one_line", "must be a single line without control characters"))
    return problems + forbidden_words(field, subject)


def check_body(body: str, field: str = "body") -> list[Problem]:
    problems = []
    if not body.strip():
        problems.append(Problem(field, "required", "a message is required"))
    if len(body) > MAX_BODY_LENGTH:
        problems.append(Problem(field, "too_long", f"must be at most {MAX_BODY_LENGTH} characters"))
    if _CONTROL.search(body):
        problems.append(Problem(field, "no_control_characters", "must not contain control characters"))
    return problems + forbidden_words(field, body)


def require_no_problems(problems: list[Problem]) -> None:
    if problems:
        raise ContentRejected(problems)
