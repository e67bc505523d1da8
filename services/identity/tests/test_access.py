"""The access decision on its own, with relationships given in memory."""

from __future__ import annotations

import uuid

import pytest

from tend_identity.access import DEFAULT_RULE, decide
from tend_identity.model import Actor, PersonKind, Resource

TEACHER = Actor(uuid.uuid4(), PersonKind.STAFF)
OTHER_LECTURER = Actor(uuid.uuid4(), PersonKind.STAFF)
STUDENT = Actor(uuid.uuid4(), PersonKind.STUDENT)
RUN = uuid.uuid4()


class Relationships:
    def __init__(self, *teaching: tuple[Actor, uuid.UUID]) -> None:
        self._teaching = {(actor.person_id, run) for actor, run in teaching}

    def teaches_or_leads(self, person_id: uuid.UUID, module_run_id: uuid.UUID) -> bool:
        return (person_id, module_run_id) in self._teaching


FACTS = Relationships((TEACHER, RUN), (STUDENT, RUN))


@pytest.mark.parametrize("action", ["teaching_session.open", "teaching_session.present"])
def test_staff_who_teach_the_run_may_run_its_sessions(action: str) -> None:
    decision = decide(TEACHER, action, Resource("module_run", str(RUN)), FACTS)

    assert decision.allowed
    assert decision.rule == "module_run.teaching_staff"
    assert decision.reason


def test_another_lecturer_is_refused() -> None:
    decision = decide(OTHER_LECTURER, "teaching_session.open", Resource("module_run", str(RUN)), FACTS)

    assert not decision.allowed
    assert decision.rule == "module_run.teaching_staff"


def test_a_student_is_refused_even_with_a_teaching_relationship() -> None:
    decision = decide(STUDENT, "teaching_session.open", Resource("module_run", str(RUN)), FACTS)

    assert not decision.allowed


def test_a_teacher_is_refused_on_another_run() -> None:
    decision = decide(TEACHER, "teaching_session.open", Resource("module_run", str(uuid.uuid4())), FACTS)

    assert not decision.allowed


def test_a_malformed_module_run_id_is_refused() -> None:
    assert not decide(TEACHER, "teaching_session.open", Resource("module_run", "CS101"), FACTS).allowed


@pytest.mark.parametrize(
    ("action", "resource"),
    [
        ("teaching_session.delete", Resource("module_run", str(RUN))),
        ("teaching_session.open", Resource("module", str(RUN))),
        ("student.view", Resource("student", str(STUDENT.person_id))),
    ],
)
def test_anything_no_rule_speaks_for_is_denied_by_default(action: str, resource: Resource) -> None:
    decision = decide(TEACHER, action, resource, FACTS)

    assert not decision.allowed
    assert decision.rule == DEFAULT_RULE
