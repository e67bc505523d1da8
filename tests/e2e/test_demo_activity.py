"""`make demo`'s activity loader against the real processes: it sends a few weeks of synthetic engagement through
indicators' ingest web process as the source "demo", indicators recomputes on its own, and then a tutor sees cases on
"My cases", a cohort's patterns on "Cohorts", and a student their own engagement on "My engagement"."""

from __future__ import annotations

import html
import re
from datetime import date

import psycopg
import pytest

from tend_identity.demo import MODULES, demo_id
from tend_testing.demo_activity import LoadedActivity, load_demo_activity, module_run_label, plan_activity
from tend_testing.flows import sign_in
from tend_testing.running_suite import RunningSuite

pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("demo-activity")]


@pytest.fixture(scope="module")
def loaded(running_suite: RunningSuite) -> LoadedActivity:
    return load_demo_activity(running_suite.config)


def _display_name(running_suite: RunningSuite, username: str) -> str:
    with psycopg.connect(running_suite.database("identity")) as conn:
        row = conn.execute("SELECT display_name FROM people WHERE username = %s", (username,)).fetchone()
    assert row is not None
    return str(row[0])


def test_tutor1_sees_cases_of_quiet_tutees(running_suite: RunningSuite, loaded: LoadedActivity) -> None:
    portal = running_suite.config.portal_url
    tutor = sign_in(portal, "tutor1")
    page = tutor.get(f"{portal}/cases", timeout=10)
    assert page.status_code == 200, page.text
    assert loaded.cases_for_tutor1 >= 1
    assert page.text.count('<li class="case">') >= 1
    assert "consecutive term days" in page.text  # a quiet tutee's no-engagement flag, in its plain sentence
    assert "was not submitted" in page.text  # the missed deadline that corroborates it
    # tutor1's cases are their tutees', shown by name: the student who dropped is one of them.
    assert _display_name(running_suite, loaded.dropping) in page.text
    assert "fell to" in page.text  # the sudden drop's sentence
    assert loaded.summary().startswith("Demo activity loaded: ")
    assert "tutor1" in loaded.summary()


_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", re.IGNORECASE)


def _flag_sentences(page: str) -> list[str]:
    """The standing flags' sentences on a case page, without the dates beside them."""
    flags = page.split('<ul class="flags">', 1)[1].split("</ul>", 1)[0]
    return [re.sub(r"<span.*?</span>", "", item).strip() for item in re.findall(r"<li>(.*?)</li>", flags, re.S)]


def test_a_tutors_case_names_module_runs_and_assignments_not_ids(
    running_suite: RunningSuite, loaded: LoadedActivity
) -> None:
    portal = running_suite.config.portal_url
    tutor = sign_in(portal, "tutor1")
    listing = tutor.get(f"{portal}/cases", timeout=10)
    case_ids = list(dict.fromkeys(re.findall(r'href="/cases/([0-9a-f-]{36})"', listing.text)))
    assert case_ids, listing.text
    sentences = []
    for case_id in case_ids:
        page = tutor.get(f"{portal}/cases/{case_id}", timeout=10)
        assert page.status_code == 200, page.text
        sentences.extend(_flag_sentences(page.text))
    assert sentences
    labels = [module_run_label(code, title) for code, title, _school in MODULES]
    assert any(label in sentence for sentence in sentences for label in labels), sentences
    assert any(sentence.startswith("Coursework ") for sentence in sentences), sentences  # a missed assignment
    assert not [sentence for sentence in sentences if _UUID.search(sentence)]
    assert not [sentence for sentence in sentences if "-assignment-" in sentence]  # the demo's assignment ids


def test_tutor1_sees_the_patterns_of_a_module_they_teach(running_suite: RunningSuite, loaded: LoadedActivity) -> None:
    portal = running_suite.config.portal_url
    tutor = sign_in(portal, "tutor1")
    page = tutor.get(f"{portal}/cohorts/{demo_id('module_run', 'CS102')}", timeout=10)
    assert page.status_code == 200, page.text
    assert "Too few students to show" not in page.text
    assert "Activity week by week" in page.text
    assert len(re.findall(r"<tr>", page.text)) >= 5  # a row per term week so far, and the header


def test_a_student_sees_their_engagement(running_suite: RunningSuite, loaded: LoadedActivity) -> None:
    portal = running_suite.config.portal_url
    student = sign_in(portal, "student001")
    page = student.get(f"{portal}/my-engagement", timeout=10)
    assert page.status_code == 200, page.text
    assert "No engagement has been recorded yet" not in page.text
    assert "Activity week by week" in page.text
    assert "Assignments submitted" in page.text
    assert "Library:" in page.text  # a source beside the VLE
    # Each module run is named by the label the demo's reference data gave it, not by a reference to its id.
    labels = [html.escape(module_run_label(code, title)) for code, title, _school in MODULES]
    assert any(f">{label}</h3>" in page.text for label in labels), page.text
    assert "(reference " not in page.text

    quiet = sign_in(portal, loaded.quiet[0])
    page = quiet.get(f"{portal}/my-engagement", timeout=10)
    assert page.status_code == 200, page.text
    assert "consecutive term days" in page.text  # what staff may notice, said to the student too


def test_the_plan_is_the_same_for_the_same_day_and_names_only_demo_students() -> None:
    day = date(2026, 12, 8)
    first, second = plan_activity(day), plan_activity(day)
    assert first.events == second.events
    assert first.reference == second.reference
    assert len(first.quiet) == 5
    assert first.dropping not in first.quiet
    assert all(event["student_id"].startswith("CN") for event in first.events)  # the demo's canary numbers
    assert all(event["occurred_at"] < f"{day.isoformat()}T00:00" for event in first.events)  # none in the future
