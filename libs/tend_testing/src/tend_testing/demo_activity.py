"""A few weeks of synthetic engagement for the demo university, sent to indicators the way a real source would:
reference data (module runs with their labels, enrolments, assignments with their titles) to `/reference` and
generic events (VLE activity, library visits, lecture recordings, submissions) to `/events` on indicators' ingest web
process, as the source "demo".
Students are named by their student numbers; indicators maps them to pseudonyms at the door.

Most students are steadily active over the term so far. A handful of the personal tutors' tutees go quiet 15 to 25
days ago and miss the last deadline, and one drops suddenly over the last two weeks: enough for indicators' rules to
open cases for tutor1 and tutor2. Deterministic: the same seed and day give the same events and ids.

The demo has no timetable and no check-ins, so no teaching sessions are declared: an expected session nobody could
attend would flag every sponsored-visa student for missed contact points.
"""

from __future__ import annotations

import base64
import random
import time
import uuid
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

import requests

from tend_identity.demo import ACADEMIC_YEAR, DEFAULT_SEED, MODULES, PROGRAMMES, TUTOR_BY_SCHOOL, build_demo, demo_id
from tend_testing.flows import sign_in
from tend_testing.suite import INGEST_SOURCE, SuiteConfig

# Event ids derive from this namespace and the event's parts, so loading twice on one day stores nothing new.
_EVENT_NAMESPACE = uuid.UUID("0b6c7a52-93f4-4d0e-8f7e-5a4d1c2b9e31")
TERM_WEEKS_SO_FAR = 9  # completed weeks before this one: enough for the sudden-drop rule's 6 + 2 weeks
QUIET_TUTEES = {"tutor1": 3, "tutor2": 2}
DROPPING_TUTOR = "tutor1"
# One tutee of each tutor stays active but misses one deadline: a case with a missed assignment only.
MISSED_DEADLINE_TUTEES = {"tutor1": 1, "tutor2": 1}


@dataclass
class ActivityPlan:
    """What will be sent: the reference document, the events, and who was made quiet or dropping (user names)."""

    reference: dict[str, list[dict[str, Any]]]
    events: list[dict[str, Any]] = field(default_factory=list)
    quiet: list[str] = field(default_factory=list)
    dropping: str = ""
    missed_deadline: list[str] = field(default_factory=list)
    term_starts_on: date = date.min


@dataclass(frozen=True)
class LoadedActivity:
    events: int
    students: int
    weeks: int
    quiet: Sequence[str]
    dropping: str
    missed_deadline: Sequence[str]
    cases_for_tutor1: int

    def summary(self) -> str:
        return (
            f"Demo activity loaded: {self.events} engagement events for {self.students} students over"
            f" {self.weeks} weeks; quiet: {', '.join(self.quiet)}; sudden drop: {self.dropping}; missed a deadline:"
            f" {', '.join(self.missed_deadline)}. Sign in as tutor1 → My cases ({self.cases_for_tutor1} open) and"
            " Cohorts; as student001 → My engagement."
        )


@dataclass(frozen=True)
class _Student:
    username: str
    number: str
    tutor: str
    runs: tuple[str, ...]  # module codes
    programme: str
    sponsored_visa: bool


def _last_completed_monday(today: date) -> date:
    """The Monday of the last week that is over by the end of `today` (indicators compares completed weeks)."""
    monday = today - timedelta(days=today.weekday())
    return monday if today.weekday() == 6 else monday - timedelta(days=7)


def _run_id(code: str) -> str:
    return str(demo_id("module_run", code))


def module_run_label(code: str, title: str) -> str:
    """What indicators calls a demo module run in its sentences, for example "CS101 Programming Fundamentals,
    2026/27"."""
    return f"{code} {title}, {ACADEMIC_YEAR}"


def _at(day: date, rng: random.Random, first_hour: int = 8, last_hour: int = 21) -> str:
    moment = datetime(day.year, day.month, day.day, tzinfo=UTC) + timedelta(
        hours=rng.randint(first_hour, last_hour - 1), minutes=rng.randint(0, 59)
    )
    return moment.isoformat().replace("+00:00", "Z")


def _students(seed: int) -> list[_Student]:
    demo = build_demo(seed)
    usernames = {person.id: person.username for person in demo.people}
    tutor_of = {student: usernames[tutor] for tutor, student in demo.tutors}
    school_of_programme = {code: school for code, _title, school, _modules in PROGRAMMES}
    modules_of_programme = {code: modules for code, _title, _school, modules in PROGRAMMES}
    programme_by_id = {demo_id("programme", code): code for code, *_rest in PROGRAMMES}
    students = []
    for person in demo.people:
        if person.student_number is None or person.programme_id is None:
            continue
        programme = programme_by_id[person.programme_id]
        assert TUTOR_BY_SCHOOL[school_of_programme[programme]] == tutor_of[person.id]
        students.append(
            _Student(
                person.username,
                person.student_number,
                tutor_of[person.id],
                modules_of_programme[programme],
                programme,
                person.sponsored_visa,
            )
        )
    return students


def _reference(students: Sequence[_Student], term_starts_on: date, deadlines: Sequence[datetime]) -> dict[str, Any]:
    registered_on = (term_starts_on - timedelta(days=14)).isoformat()
    return {
        "module_runs": [
            {
                "module_run_id": _run_id(code),
                "label": module_run_label(code, title),
                "starts_on": term_starts_on.isoformat(),
                "ends_on": (term_starts_on + timedelta(weeks=12, days=-3)).isoformat(),
            }
            for code, title, _school in MODULES
        ],
        "students": [
            {
                "student": {"kind": "student_number", "id": s.number},
                "programme_id": str(demo_id("programme", s.programme)),
                "sponsored_visa": s.sponsored_visa,
            }
            for s in students
        ],
        "enrolments": [
            {
                "student": {"kind": "student_number", "id": s.number},
                "module_run_id": _run_id(code),
                "registered_on": registered_on,
                "unregistered_on": None,
            }
            for s in students
            for code in s.runs
        ],
        "assignments": [
            {
                "assignment_id": f"{code}-assignment-{n}",
                "module_run_id": _run_id(code),
                "due_at": due.isoformat(),
                "title": f"Coursework {n}",
            }
            for code, _title, _school in MODULES
            for n, due in enumerate(deadlines, start=1)
        ],
    }


def _event(kind: str, student: _Student, occurred_at: str, **extra: Any) -> dict[str, Any]:
    key = f"{kind}:{student.username}:{occurred_at}:{extra.get('module_run_id', '')}:{extra.get('object_id', '')}"
    return {
        "event_id": f"demo-{uuid.uuid5(_EVENT_NAMESPACE, key)}",
        "student_id_kind": "student_number",
        "student_id": student.number,
        "type": kind,
        "occurred_at": occurred_at,
        **extra,
    }


def _days(first: date, last: date) -> Iterator[date]:
    day = first
    while day <= last:
        yield day
        day += timedelta(days=1)


def _student_events(
    student: _Student,
    rng: random.Random,
    term_starts_on: date,
    today: date,
    deadlines: Sequence[datetime],
    quiet_from: date | None,
    drop_from: date | None,
    misses_first_deadline: bool = False,
) -> list[dict[str, Any]]:
    """One student's events: a daily VLE click total per module run they work on, library visits, recordings
    watched, and a submission before each deadline that has passed (unless quiet or dropping by then)."""
    intensity = 1.3 if drop_from else rng.uniform(0.6, 1.6)
    events = []
    for day in _days(term_starts_on, today - timedelta(days=1)):
        if quiet_from and day >= quiet_from:
            break
        weekend = day.weekday() >= 5
        dropped = drop_from is not None and day >= drop_from
        if dropped:
            # One short visit a week: not silence (that is another rule), but a fraction of the student's usual.
            if day.weekday() == 2:
                events.append(
                    _event(
                        "vle_activity",
                        student,
                        _at(day, rng),
                        module_run_id=_run_id(student.runs[0]),
                        amount=rng.randint(1, 3),
                    )
                )
            continue
        if rng.random() < (0.3 if weekend else 0.75):
            for code in rng.sample(student.runs, k=min(len(student.runs), rng.choice((1, 1, 2, 2, 3)))):
                clicks = max(1, round(intensity * rng.uniform(6, 30)))
                events.append(
                    _event("vle_activity", student, _at(day, rng), module_run_id=_run_id(code), amount=clicks)
                )
        if not weekend and rng.random() < 0.15:
            events.append(_event("library_visit", student, _at(day, rng, 9, 20)))
        if rng.random() < 0.08:
            code = rng.choice(student.runs)
            week = (day - term_starts_on).days // 7 + 1
            events.append(
                _event(
                    "recording_watched",
                    student,
                    _at(day, rng),
                    module_run_id=_run_id(code),
                    object_id=f"{code}-lecture-{week:02d}",
                    amount=rng.randint(10, 50),
                )
            )
    for number, due in enumerate(deadlines, start=1):
        stopped = quiet_from or drop_from
        if due.date() >= today or (stopped and due.date() >= stopped):
            continue
        for code in student.runs:
            if misses_first_deadline and number == 1 and code == student.runs[0]:
                continue
            submitted = due - timedelta(minutes=rng.randint(30, 72 * 60))
            events.append(
                _event(
                    "assignment_submitted",
                    student,
                    submitted.isoformat().replace("+00:00", "Z"),
                    module_run_id=_run_id(code),
                    object_id=f"{code}-assignment-{number}",
                )
            )
    return events


def plan_activity(today: date, seed: int = DEFAULT_SEED) -> ActivityPlan:
    """The demo's activity for the term so far as of `today`: the same for the same seed and day."""
    rng = random.Random(seed)  # noqa: S311 (demo data, not secrets)
    students = _students(seed)
    last_monday = _last_completed_monday(today)
    term_starts_on = last_monday - timedelta(weeks=TERM_WEEKS_SO_FAR - 1)
    deadlines = [
        datetime.combine(term_starts_on + timedelta(weeks=4, days=4), datetime.min.time(), UTC) + timedelta(hours=16),
        datetime.combine(today - timedelta(days=10), datetime.min.time(), UTC) + timedelta(hours=16),
        datetime.combine(today + timedelta(days=11), datetime.min.time(), UTC) + timedelta(hours=16),
    ]
    # student001 stays steady: the summary line sends people to sign in as them.
    candidates = [s for s in students if s.username != "student001"]
    quiet: dict[str, date] = {}
    for tutor, count in QUIET_TUTEES.items():
        for s in rng.sample([s for s in candidates if s.tutor == tutor], count):
            quiet[s.username] = today - timedelta(days=rng.randint(15, 21))
    dropping = rng.choice([s for s in candidates if s.tutor == DROPPING_TUTOR and s.username not in quiet])
    steady = [s for s in candidates if s.username not in quiet and s is not dropping]
    missed_deadline = {
        s.username
        for tutor, count in MISSED_DEADLINE_TUTEES.items()
        for s in rng.sample([s for s in steady if s.tutor == tutor], count)
    }
    drop_from = last_monday - timedelta(days=7)  # the last two completed weeks
    plan = ActivityPlan(
        _reference(students, term_starts_on, deadlines),
        quiet=sorted(quiet),
        dropping=dropping.username,
        missed_deadline=sorted(missed_deadline),
        term_starts_on=term_starts_on,
    )
    for s in students:
        plan.events.extend(
            _student_events(
                s,
                random.Random(f"{seed}:{s.username}"),  # noqa: S311 (demo data, not secrets)
                term_starts_on,
                today,
                deadlines,
                quiet.get(s.username),
                drop_from if s is dropping else None,
                s.username in missed_deadline,
            )
        )
    return plan


def _post(config: SuiteConfig, path: str, document: Mapping[str, Any]) -> dict[str, Any]:
    token = base64.b64encode(f"{INGEST_SOURCE}:{config.ingest_source_key}".encode()).decode()
    url = f"{config.indicators_ingest_url}{path}"
    response = requests.post(url, json=document, headers={"Authorization": f"Basic {token}"}, timeout=120)
    if response.status_code != 200:
        raise RuntimeError(f"indicators refused the demo's {path} ({response.status_code}): {response.text[:2000]}")
    answer: dict[str, Any] = response.json()
    return answer


def send_activity(config: SuiteConfig, plan: ActivityPlan) -> None:
    """All events in one request (stored in one transaction), then the reference data straight after. Indicators
    recomputes a couple of seconds after data arrives: reference data alone (registrations and deadlines with no
    engagement) would flag every student for a moment, and part of the events would flag the students not yet sent.
    Every student is one of the demo's, so one indicators could not map means identity holds another demo."""
    answer = _post(config, "/events", {"events": plan.events})
    if answer.get("unknown_students"):
        raise RuntimeError(
            f"identity does not know {len(answer['unknown_students'])} of the demo's students: was the demo"
            " university loaded with another seed?"
        )
    _post(config, "/reference", plan.reference)


def wait_for_cases(config: SuiteConfig, username: str = "tutor1", timeout: float = 90.0) -> int:
    """Signs in to the portal as `username` and waits until "My cases" lists at least one case (indicators'
    serve process recomputes a few seconds after new data arrives); returns how many it lists."""
    try:
        browser = sign_in(config.portal_url, username)
    except AssertionError as exc:  # flows.sign_in asserts what a browser would see
        raise RuntimeError(f"could not sign in to the portal as {username}: {exc}") from exc
    deadline = time.monotonic() + timeout
    while True:
        page = browser.get(f"{config.portal_url}/cases", timeout=10)
        count = page.text.count('<li class="case">') if page.status_code == 200 else 0
        if count:
            return count
        if time.monotonic() > deadline:
            raise RuntimeError(
                f"{username}'s My cases listed no case {timeout:.0f} s after the demo activity was loaded (last"
                f" answer {page.status_code}); see indicators' log for the recompute"
            )
        time.sleep(1.0)


def load_demo_activity(config: SuiteConfig, today: date | None = None, seed: int = DEFAULT_SEED) -> LoadedActivity:
    """Plans, sends and waits: returns what was loaded once tutor1 sees cases."""
    day = today or datetime.now(UTC).date()
    plan = plan_activity(day, seed)
    send_activity(config, plan)
    cases = wait_for_cases(config)
    weeks = (day - plan.term_starts_on).days // 7 + 1
    return LoadedActivity(
        events=len(plan.events),
        students=len(plan.reference["students"]),
        weeks=weeks,
        quiet=plan.quiet,
        dropping=plan.dropping,
        missed_deadline=plan.missed_deadline,
        cases_for_tutor1=cases,
    )
