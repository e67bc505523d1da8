"""The fake identity for notify's tests: tend_testing's, with a small directory of people for GetContactDetails.

Like identity, it checks the calling service's signed credential (notify signs with `service_key`), so notify's
service authentication runs for real.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

import grpc
from google.protobuf.message import Message
from tend.identity.v1 import identity_pb2

from tend_notify.access import AUDIENCE, SEND_ACTION, STUDENT
from tend_testing import fake_identity

DENIED_REASON = "You are not responsible for this student."


@dataclass(frozen=True)
class Person:
    preferred_name: str
    email: str


class FakeIdentity(fake_identity.FakeIdentity):
    def __init__(self) -> None:
        super().__init__(AUDIENCE, allowed_reason="You are their tutor.", denied_reason=DENIED_REASON, caller=AUDIENCE)
        self.students: dict[str, Person] = {}  # pseudonym -> person
        self.staff: dict[str, Person] = {}  # person id -> person

    def add_student(self, preferred_name: str, email: str) -> str:
        pseudonym = f"p_{uuid.uuid4().hex[:16]}"
        self.students[pseudonym] = Person(preferred_name, email)
        return pseudonym

    def add_staff(self, preferred_name: str, email: str) -> str:
        person_id = str(uuid.uuid4())
        self.staff[person_id] = Person(preferred_name, email)
        return person_id

    def allow_enquiry(self, person_id: str, pseudonym: str) -> None:
        self.allow(person_id, SEND_ACTION, STUDENT, pseudonym)

    @property
    def contact_requests(self) -> list[identity_pb2.GetContactDetailsRequest]:
        return self.requests("GetContactDetails")

    def methods(self) -> dict[str, fake_identity.Method]:
        return {**super().methods(), "GetContactDetails": self._get_contact_details}

    def _get_contact_details(
        self, request: identity_pb2.GetContactDetailsRequest, context: grpc.ServicerContext
    ) -> Message:
        person = self.students.get(request.pseudonym) if request.pseudonym else self.staff.get(request.person_id)
        if person is None:
            fake_identity.abort(context, grpc.StatusCode.NOT_FOUND, "no such person")
        return identity_pb2.GetContactDetailsResponse(preferred_name=person.preferred_name, email=person.email)
