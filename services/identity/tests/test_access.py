"""The access decision on its own, with relationships given in memory."""

from __future__ import annotations

import uuid

import pytest

from tend_identity import policy
from tend_identity.access import DEFAULT_RULE, decide
from tend_identity.model import Actor, PersonKind, Resource
from tend_identity.policy import Purpose

TEACHER = Actor(uuid.uuid4(), PersonKind.STAFF)
OTHER_LECTURER = Actor(uuid.uuid4(), PersonKind.STAFF)
STUDENT = Actor(uuid.uuid4(), PersonKind.STUDENT)
RUN = uuid.uuid4()


class Relationships:
    """Relationships held, as (actor, kind, resource id) -> relationship names."""

    def __init__(self, held: dict[tuple[uuid.UUID, str, uuid.UUID | None], set[str]]) -> None:
        self._held = held
        self.asked: list[frozenset[str]] = []

    def relationships_to(
        self, actor: Actor, kind: str, resource_id: uuid.UUID | None, candidates: frozenset[str]
    ) -> frozenset[str]:
        self.asked.append(candidates)
        return frozenset(self._held.get((actor.person_id, kind, resource_id), set())) & candidates


FACTS = Relationships(
    {
        (TEACHER.person_id, "module_run", RUN): {"teaches"},
        # A student recorded as teaching (bad data) must still not act as staff.
        (STUDENT.person_id, "module_run", RUN): {"teaches"},
        (TEACHER.person_id, "student", STUDENT.person_id): {"teaches"},
        (STUDENT.person_id, "student", STUDENT.person_id): {policy.SELF},
    }
)


@pytest.mark.parametrize("action", ["teaching_session.open", "teaching_session.present", "attendance.correct"])
def test_staff_who_teach_the_run_may_run_its_sessions(action: str) -> None:
    decision = decide(TEACHER, action, Resource("module_run", str(RUN)), FACTS)

    assert decision.allowed
    assert decision.rule == f"module_run.{action}"
    assert decision.reason


def test_another_lecturer_is_refused() -> None:
    decision = decide(OTHER_LECTURER, "teaching_session.open", Resource("module_run", str(RUN)), FACTS)

    assert not decision.allowed
    assert decision.rule == "module_run.teaching_session.open"


def test_a_student_is_refused_even_with_a_teaching_relationship() -> None:
    decision = decide(STUDENT, "teaching_session.open", Resource("module_run", str(RUN)), FACTS)

    assert not decision.allowed


def test_a_teacher_is_refused_on_another_run() -> None:
    decision = decide(TEACHER, "teaching_session.open", Resource("module_run", str(uuid.uuid4())), FACTS)

    assert not decision.allowed


def test_a_malformed_module_run_id_is_refused() -> None:
    assert not decide(TEACHER, "teaching_session.open", Resource("module_run", "CS101"), FACTS).allowed


def test_a_student_view_needs_a_purpose() -> None:
    decision = decide(TEACHER, "student.view", Resource("student", str(STUDENT.person_id)), FACTS)

    assert not decision.allowed
    assert decision.rule == "student.view"


def test_a_student_view_is_decided_by_the_purpose_scope() -> None:
    student = Resource("student", str(STUDENT.person_id))

    support = decide(TEACHER, "student.view", student, FACTS, Purpose.ENGAGEMENT_SUPPORT)
    visa = decide(TEACHER, "student.view", student, FACTS, Purpose.VISA_COMPLIANCE)
    cohort = decide(TEACHER, "student.view", student, FACTS, Purpose.COHORT_PATTERNS)

    assert (support.allowed, support.rule) == (True, "student.view.teaches")
    assert support.reason == "You teach a module run this student is on."
    assert not visa.allowed
    assert not cohort.allowed


def test_a_student_sees_only_themself() -> None:
    own = decide(STUDENT, "student.view", Resource("student", str(STUDENT.person_id)), FACTS, Purpose.VISA_COMPLIANCE)
    other = decide(STUDENT, "student.view", Resource("student", str(TEACHER.person_id)), FACTS, Purpose.VISA_COMPLIANCE)

    assert (own.allowed, own.rule) == (True, "student.view.self")
    assert not other.allowed
    assert FACTS.asked[-1] == frozenset({policy.SELF})


@pytest.mark.parametrize(
    ("action", "resource"),
    [
        ("teaching_session.delete", Resource("module_run", str(RUN))),
        ("teaching_session.open", Resource("module", str(RUN))),
        ("student.view", Resource("person", str(STUDENT.person_id))),
    ],
)
def test_anything_no_rule_speaks_for_is_denied_by_default(action: str, resource: Resource) -> None:
    decision = decide(TEACHER, action, resource, FACTS)

    assert not decision.allowed
    assert decision.rule == DEFAULT_RULE
