"""What an enquiry may say: no flags, no indicator terms, no figures about activity; a subject on one line."""

from __future__ import annotations

import pytest

from tend_notify.content_rules import check_body, check_subject, forbidden_words


@pytest.mark.parametrize(
    ("text", "rule", "word"),
    [
        ("You were flagged by the system", "no_flags", '"flagged" (line 1)'),
        ("A FLAG was raised", "no_flags", '"FLAG"'),
        ("Your engagement score is low", "no_indicator_terms", '"score"'),
        ("The dashboard shows you", "no_indicator_terms", '"dashboard"'),
        ("Your attendance has dropped", "no_indicator_terms", '"attendance"'),
        ("We noticed low engagement", "no_indicator_terms", '"low engagement"'),
        ("You seem to have disengaged", "no_indicator_terms", '"disengaged"'),
        ("You were at risk", "no_indicator_terms", '"risk"'),
        ("Only 40% of sessions", "no_activity_figures", '"40%"'),
        ("You missed 3 lectures", "no_activity_figures", '"3 lectures"'),
        ("3 out of 10 seminars", "no_activity_figures", '"3 out of 10"'),
        ("nothing for the last 14 days", "no_activity_figures", '"for the last 14 days"'),
        ("Hello\nnothing over 2 weeks", "no_activity_figures", '"over 2 weeks" (line 2)'),
    ],
)
def test_indicator_data_is_named_with_its_line(text: str, rule: str, word: str) -> None:
    problems = forbidden_words("body", text)
    assert [p.rule for p in problems] == [rule]
    assert word in problems[0].message
    assert str(problems[0]).startswith("body: ")


@pytest.mark.parametrize(
    "text",
    [
        "How are things going? I would be glad to help.",
        "Could we meet in the next 2 weeks? My office is room 3.12.",
        "Student Support is open 9 to 5: https://www.example.ac.uk/support",
        "Flagstaff is not a word we check for, but flagship is.",
    ],
)
def test_supportive_text_passes(text: str) -> None:
    problems = forbidden_words("body", text)
    # "flag" as the start of any word is refused, on purpose: better a rephrased sentence than a slip.
    assert [p.rule for p in problems] == (["no_flags"] if "Flag" in text else [])


def test_a_subject_is_one_line_and_required() -> None:
    assert [p.rule for p in check_subject("Hello\r\nBcc: someone@example.com")] == ["one_line"]
    assert [p.rule for p in check_subject("   ")] == ["required"]
    assert [p.rule for p in check_subject("x" * 201)] == ["too_long"]
    assert check_subject("How are things going?") == []


def test_a_body_has_no_control_characters_and_a_limit() -> None:
    assert [p.rule for p in check_body("Hello\x00there")] == ["no_control_characters"]
    assert [p.rule for p in check_body("x" * 10_001)] == ["too_long"]
    assert [p.rule for p in check_body("")] == ["required"]
    assert check_body("Dear Sam,\n\n\tHow are you?") == []
