"""Every rule on small constructed histories, boundaries included: 13 versus 14 days, a break week, registration,
grace periods, cohort size, baselines, contact points in a row. Each finding's evidence is one plain sentence."""

from __future__ import annotations

from datetime import date, timedelta

import pytest

from tend_indicators.activity import (
    SOURCE_BITS,
    Assignment,
    ExpectedSession,
    ModuleRunInfo,
    StudentHistory,
)
from tend_indicators.rules.engine import Evaluator
from tend_indicators.rules.findings import Finding
from tend_indicators.rules_config import RulesConfig, RulesConfigError, parse_rules_config

RUN = "run-cs101"
TERM = {"name": "spring term", "starts_on": "2026-01-12", "ends_on": "2026-05-01"}
READING_WEEK = {"name": "the reading week", "starts_on": "2026-03-02", "ends_on": "2026-03-08"}


def config(rules: dict[str, object] | None = None, breaks: bool = True) -> RulesConfig:
    calendar = {"terms": [TERM], "breaks": [READING_WEEK] if breaks else []}
    return parse_rules_config({"defaults": rules or {}, "institutions": {"uni": {"calendar": calendar}}})


def day(text: str) -> int:
    return date.fromisoformat(text).toordinal()


def student(
    name: str, active_days: tuple[str, ...] | list[str] = (), source: str = "vle", amount: int = 1, **run: object
) -> StudentHistory:
    history = StudentHistory(name, "uni")
    run_history = history.run(RUN)
    for key, value in run.items():
        setattr(run_history, key, value)
    for text in active_days:
        run_history.activity.add(day(text), amount, SOURCE_BITS[source])
    return history


def weekly(history: StudentHistory, mondays: list[str], amounts: list[int]) -> StudentHistory:
    """Activity of `amount` on the Monday of each week."""
    for monday, amount in zip(mondays, amounts, strict=True):
        if amount:
            history.run(RUN).activity.add(day(monday), amount, SOURCE_BITS["vle"])
    history.run(RUN)
    return history


def findings(
    students: list[StudentHistory],
    as_of: str,
    rules: dict[str, object] | None = None,
    run: ModuleRunInfo | None = None,
    breaks: bool = True,
) -> dict[str, list[Finding]]:
    runs = {RUN: run or ModuleRunInfo(RUN, "uni")}
    evaluator = Evaluator(config(rules, breaks), runs, {s.pseudonym: s for s in students}, day(as_of))
    return {s.pseudonym: evaluator.findings(s) for s in students}


def only(rule: str) -> dict[str, object]:
    names = ("no_engagement", "low_engagement", "sudden_drop", "missed_assignment", "visa_contact_points")
    return {name: {"enabled": name == rule} for name in names}


def assert_one_sentence(finding: Finding) -> None:
    assert finding.sentence.endswith(".")
    assert ". " not in finding.sentence
    assert "\n" not in finding.sentence


# --- no engagement for 14 consecutive term days ---


@pytest.mark.parametrize(("as_of", "flagged"), [("2026-02-15", False), ("2026-02-16", True)])
def test_no_engagement_fires_at_14_days_not_13(as_of: str, flagged: bool) -> None:
    found = findings([student("s", ["2026-01-13", "2026-02-02"])], as_of, only("no_engagement"))["s"]
    assert bool(found) is flagged
    if flagged:
        (finding,) = found
        assert finding.episode == "2026-02-03"
        assert finding.values["inactive_days"] == 14
        assert "14 consecutive term days since 2 Feb 2026" in finding.sentence
        assert "threshold of 14 days" in finding.sentence
        assert_one_sentence(finding)


@pytest.mark.parametrize(("as_of", "flagged"), [("2026-03-15", False), ("2026-03-16", True)])
def test_a_break_week_is_not_counted(as_of: str, flagged: bool) -> None:
    # Last active Monday 23 Feb: 24 Feb to 1 Mar is 6 days, the reading week 2-8 Mar is not counted, then 9 Mar on.
    history = student("s", ["2026-02-23"])
    assert bool(findings([history], as_of, only("no_engagement"))["s"]) is flagged
    if flagged:
        (finding,) = findings([history], as_of, only("no_engagement"))["s"]
        assert "(the reading week not counted)" in finding.sentence
        assert finding.values == {"inactive_days": 14, "threshold_days": 14, "calendar_days": 21}


def test_without_the_break_the_same_gap_fires_a_week_earlier() -> None:
    history = student("s", ["2026-02-23"])
    assert findings([history], "2026-03-09", only("no_engagement"), breaks=False)["s"]


def test_days_before_registration_or_before_term_are_not_counted() -> None:
    late = student("late", registered_on=day("2026-02-10"))
    assert not findings([late], "2026-02-22", only("no_engagement"))["late"]
    (finding,) = findings([late], "2026-02-23", only("no_engagement"))["late"]
    assert finding.episode == "2026-02-10"
    # Activity before the term does not count against it, nor do pre-term days without it.
    early = student("early", ["2026-01-02"])
    assert not findings([early], "2026-01-24", only("no_engagement"))["early"]
    assert findings([early], "2026-01-25", only("no_engagement"))["early"]


def test_a_student_no_longer_registered_is_not_flagged() -> None:
    gone = student("gone", ["2026-01-13"], unregistered_on=day("2026-01-20"))
    assert not findings([gone], "2026-02-20", only("no_engagement"))["gone"]


def test_engagement_from_any_source_counts_unless_the_rule_names_sources() -> None:
    reader = student("s", ["2026-02-10"], source="library")
    reader.runs[RUN].activity.add(day("2026-01-20"), 1, SOURCE_BITS["vle"])
    assert not findings([reader], "2026-02-20", only("no_engagement"))["s"]
    vle_only = {**only("no_engagement"), "no_engagement": {"sources": ["vle"]}}
    (finding,) = findings([reader], "2026-02-20", vle_only)["s"]
    assert "from vle for" in finding.sentence


def test_cohort_context_is_given_only_for_a_cohort_of_at_least_ten() -> None:
    quiet = [student(f"q{n}", ["2026-01-13"]) for n in range(3)]
    busy = [student(f"b{n}", ["2026-01-13", "2026-02-26"]) for n in range(7)]
    small = findings([*quiet, *busy[:6]], "2026-02-27", only("no_engagement"))
    assert "students on" not in small["q0"][0].sentence
    large = findings([*quiet, *busy], "2026-02-27", only("no_engagement"))
    assert "while 3 of the 10 students on a module run (30%) had such a gap" in large["q0"][0].sentence
    labelled = ModuleRunInfo(RUN, "uni", label="CS101 Programming, 2026/27")
    named = findings([*quiet, *busy], "2026-02-27", only("no_engagement"), run=labelled)
    assert "while 3 of the 10 students on CS101 Programming, 2026/27 (30%) had such a gap" in named["q0"][0].sentence
    assert RUN not in named["q0"][0].sentence


# --- an expected assignment missed ---


def assignment_run() -> ModuleRunInfo:
    return ModuleRunInfo(RUN, "uni", assignments=[Assignment("essay-1", day("2026-02-20"))])


def submitted(history: StudentHistory, when: str) -> StudentHistory:
    history.runs[RUN].submissions["essay-1"] = day(when)
    return history


@pytest.mark.parametrize(
    ("submitted_on", "as_of", "flagged"),
    [
        (None, "2026-02-26", False),  # 6 days after the deadline, within the 7-day grace
        (None, "2026-02-27", True),  # 7 days after
        ("2026-02-25", "2026-03-10", False),  # late, but within the grace
        ("2026-02-28", "2026-03-10", True),  # after the grace: the evidence held on 27 Feb
    ],
)
def test_missed_assignment_after_the_grace_period(submitted_on: str | None, as_of: str, flagged: bool) -> None:
    history = student("s", ["2026-02-18", "2026-02-24"])
    if submitted_on:
        submitted(history, submitted_on)
    found = findings([history], as_of, only("missed_assignment"), run=assignment_run())["s"]
    assert bool(found) is flagged
    if flagged:
        assert found[0].episode == "essay-1"
        assert found[0].sentence.startswith("An assignment due 20 Feb 2026 was not submitted within the 7-day grace")
        assert "essay-1" not in found[0].sentence
        assert RUN not in found[0].sentence
        assert_one_sentence(found[0])


@pytest.mark.parametrize(
    ("title", "label", "opening"),
    [
        (None, None, "An assignment due 20 Feb 2026 was not submitted within"),
        (None, "CS101 Programming, 2026/27", "An assignment due 20 Feb 2026 (CS101 Programming, 2026/27) was not"),
        ("Coursework 1", None, "Coursework 1, due 20 Feb 2026, was not submitted within"),
        (
            "Coursework 1",
            "CS101 Programming, 2026/27",
            "Coursework 1 (CS101 Programming, 2026/27), due 20 Feb 2026, was",
        ),
    ],
)
def test_a_missed_assignment_is_named_by_its_title_and_module_label_when_known(
    title: str | None, label: str | None, opening: str
) -> None:
    run = ModuleRunInfo(RUN, "uni", assignments=[Assignment("essay-1", day("2026-02-20"), title)], label=label)
    (found,) = findings([student("s", ["2026-02-18"])], "2026-02-27", only("missed_assignment"), run=run)["s"]
    assert found.sentence.startswith(opening)
    assert "essay-1" not in found.sentence
    assert RUN not in found.sentence
    assert_one_sentence(found)


def test_a_quiet_student_is_flagged_sooner_after_a_missed_deadline() -> None:
    quiet = student("quiet", ["2026-02-05"])
    active = student("active", ["2026-02-19"])
    on_day_four = findings([quiet, active], "2026-02-24", only("missed_assignment"), run=assignment_run())
    assert on_day_four["quiet"]
    assert "no engagement with the module run in the 7 days before" in on_day_four["quiet"][0].sentence
    assert not on_day_four["active"]
    on_day_three = findings([quiet], "2026-02-23", only("missed_assignment"), run=assignment_run())
    assert not on_day_three["quiet"]


def test_a_quiet_fortnight_is_corroborated_by_missed_work_where_work_is_expected() -> None:
    # Quiet since 2 Feb; an essay was due 20 Feb. Submitted: a known cause for the quiet. Missed: flagged.
    on_time = submitted(student("on-time", ["2026-02-02"]), "2026-02-02")
    missed = student("missed", ["2026-02-02"])
    found = findings([on_time, missed], "2026-03-01", only("no_engagement"), run=assignment_run())
    assert not found["on-time"]
    assert found["missed"]
    # Before anything is due, no one is behind yet.
    assert not findings([missed], "2026-02-20", only("no_engagement"), run=assignment_run())["missed"]
    # The policy's literal criterion flags both.
    literal = {**only("no_engagement"), "no_engagement": {"corroborated": False}}
    assert all(findings([on_time, missed], "2026-03-01", literal, run=assignment_run()).values())


def test_an_assignment_due_before_registration_is_not_expected() -> None:
    late = student("late", registered_on=day("2026-02-21"))
    assert not findings([late], "2026-03-20", only("missed_assignment"), run=assignment_run())["late"]


# --- persistent low engagement relative to the cohort ---

MONDAYS = [(date(2026, 1, 12) + timedelta(weeks=n)).isoformat() for n in range(6)]  # 12 Jan .. 16 Feb


def cohort_of(size: int) -> list[StudentHistory]:
    return [weekly(StudentHistory(f"c{n}", "uni"), MONDAYS, [40 + n] * 6) for n in range(size)]


@pytest.mark.parametrize(("amounts", "flagged"), [([50, 0, 0, 0, 0, 50], True), ([50, 50, 0, 0, 50, 0], False)])
def test_low_engagement_in_four_of_five_weeks(amounts: list[int], flagged: bool) -> None:
    low = weekly(StudentHistory("low", "uni"), MONDAYS, amounts)
    low.runs[RUN].activity.add(day("2026-02-16"), 0, SOURCE_BITS["vle"])
    found = findings([*cohort_of(11), low], "2026-02-22", only("low_engagement"))["low"]
    assert bool(found) is flagged
    if flagged:
        assert "lowest 10% of its cohort of 12 students in 4 of the last 5 term weeks" in found[0].sentence
        assert found[0].sentence.startswith("Activity on a module run was among")
        assert_one_sentence(found[0])


def test_low_engagement_names_the_module_run_by_its_label() -> None:
    low = weekly(StudentHistory("low", "uni"), MONDAYS, [50, 0, 0, 0, 0, 50])
    labelled = ModuleRunInfo(RUN, "uni", label="CS101 Programming, 2026/27")
    (found,) = findings([*cohort_of(11), low], "2026-02-22", only("low_engagement"), run=labelled)["low"]
    assert found.sentence.startswith("Activity on CS101 Programming, 2026/27 was among the lowest 10% of its cohort")
    assert RUN not in found.sentence


def test_low_engagement_needs_a_cohort_of_at_least_ten() -> None:
    low = weekly(StudentHistory("low", "uni"), MONDAYS, [50, 0, 0, 0, 0, 0])
    assert not findings([*cohort_of(8), low], "2026-02-22", only("low_engagement"))["low"]
    assert findings([*cohort_of(9), low], "2026-02-22", only("low_engagement"))["low"]


# --- a sudden drop against the student's own baseline ---

EIGHT_MONDAYS = [(date(2026, 1, 12) + timedelta(weeks=n)).isoformat() for n in range(8)]  # to 2 Mar (reading week)


@pytest.mark.parametrize(("recent", "flagged"), [(8, True), (13, False)])
def test_sudden_drop_against_own_baseline(recent: int, flagged: bool) -> None:
    mondays = [*EIGHT_MONDAYS[:7], "2026-03-09"]  # the reading week is skipped
    cohort = [weekly(StudentHistory(f"c{n}", "uni"), mondays, [50] * 8) for n in range(11)]
    dropping = weekly(StudentHistory("d", "uni"), mondays, [60] * 6 + [recent, recent])
    # Baseline 60 / median 50 = 120%; recent 8 / 50 = 16% fires (at most 20% of 120% = 24%), 13 / 50 = 26% does not.
    found = findings([*cohort, dropping], "2026-03-15", only("sudden_drop"))["d"]
    assert bool(found) is flagged
    if flagged:
        assert "fell to 16% of the cohort median over the last 2 term weeks" in found[0].sentence
        assert_one_sentence(found[0])


def test_a_week_quiet_for_everyone_is_no_drop() -> None:
    cohort = [weekly(StudentHistory(f"c{n}", "uni"), EIGHT_MONDAYS[:7], [50] * 5 + [5, 5]) for n in range(11)]
    student_like_them = weekly(StudentHistory("d", "uni"), EIGHT_MONDAYS[:7], [60] * 5 + [5, 5])
    assert not findings([*cohort, student_like_them], "2026-03-01", only("sudden_drop"))["d"]


# --- sponsored-visa students: expected contact points missed in a row ---


def sessions_run(count: int) -> ModuleRunInfo:
    first = date(2026, 1, 13)
    sessions = [
        ExpectedSession(f"lec-{n:02d}", (first + timedelta(days=2 * n)).toordinal(), float(n)) for n in range(count)
    ]
    return ModuleRunInfo(RUN, "uni", sessions=sessions)


@pytest.mark.parametrize(("attended", "flagged"), [(["lec-00", "lec-01"], True), (["lec-00", "lec-02"], False)])
def test_ten_missed_contact_points_in_a_row(attended: list[str], flagged: bool) -> None:
    sponsored = student("v", sponsored_visa=True)
    sponsored.sponsored_visa = True
    sponsored.runs[RUN].attended = set(attended)
    found = findings([sponsored], "2026-02-28", only("visa_contact_points"), run=sessions_run(12))["v"]
    assert bool(found) is flagged
    if flagged:
        assert found[0].episode == "lec-02"
        assert "Missed 10 expected contact points in a row" in found[0].sentence
        assert "threshold of 10" in found[0].sentence
        assert_one_sentence(found[0])


def test_the_visa_rule_applies_only_to_sponsored_students_and_is_configurable() -> None:
    not_sponsored = student("n")
    assert not findings([not_sponsored], "2026-02-28", only("visa_contact_points"), run=sessions_run(12))["n"]
    sponsored = student("v")
    sponsored.sponsored_visa = True
    sponsored.runs[RUN].attended = {"lec-00", "lec-01", "lec-02", "lec-03", "lec-04"}
    seven = {**only("visa_contact_points"), "visa_contact_points": {"consecutive": 7}}
    assert findings([sponsored], "2026-02-28", seven, run=sessions_run(12))["v"]
    assert not findings([sponsored], "2026-02-28", only("visa_contact_points"), run=sessions_run(12))["v"]


# --- settings per institution and programme ---


def test_programme_settings_override_the_institution_and_the_defaults() -> None:
    configured = parse_rules_config(
        {
            "defaults": {"no_engagement": {"days": 14}},
            "institutions": {
                "uni": {
                    "rules": {"no_engagement": {"days": 12}},
                    "programmes": {"medicine": {"rules": {"no_engagement": {"days": 7}}}},
                }
            },
        }
    )
    assert configured.rules("other", None).no_engagement.days == 14
    assert configured.rules("uni", None).no_engagement.days == 12
    assert configured.rules("uni", "medicine").no_engagement.days == 7
    assert configured.rules("uni", "medicine").missed_assignment.grace_days == 7


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"defaults": {"no_engagment": {}}}, "unknown rule 'no_engagment'"),
        ({"defaults": {"no_engagement": {"days": "14"}}}, "no_engagement.days: must be a whole number"),
        ({"defaults": {"low_engagement": {"quantile": 2}}}, "low_engagement.quantile: must be between 0 and 1"),
        (
            {"institutions": {"u": {"calendar": {"terms": [{"starts_on": "2026-13-01"}]}}}},
            "needs starts_on and ends_on",
        ),
    ],
)
def test_bad_settings_are_named(raw: dict[str, object], message: str) -> None:
    with pytest.raises(RulesConfigError, match=message):
        parse_rules_config(raw)
