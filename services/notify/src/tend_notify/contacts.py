"""Where to send a message, asked of identity at send time and never stored.

Notify keeps no profile: a student's preferred name and address, and the sender's, are fetched for each attempt and
forgotten once the message is handed over.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Protocol

import grpc
from tend.identity.v1 import identity_pb2, identity_pb2_grpc

SUPPORTIVE_ENQUIRY = "supportive_enquiry"
FOLLOW_UP = "enquiry_follow_up"


@dataclass(frozen=True)
class Contact:
    preferred_name: str
    email: str


@dataclass(frozen=True)
class ContactRequest:
    """One look-up: a student (by pseudonym) or a member of staff (by person id), for a purpose, for someone."""

    purpose: str
    on_behalf_of: str
    pseudonym: str = ""
    person_id: str = ""


class ContactError(Exception):
    """A look-up that gave no address."""


class ContactUnknown(ContactError):
    """Identity does not know the pseudonym or person (left, erased, or never existed)."""


class ContactsUnavailable(ContactError):
    """Identity could not be asked; try again later."""


class ContactDirectory(Protocol):
    def student(self, pseudonym: str, purpose: str, on_behalf_of: str) -> Contact: ...

    def staff(self, person_id: str, purpose: str, on_behalf_of: str) -> Contact: ...

    def look_up(self, requests: Iterable[ContactRequest]) -> dict[ContactRequest, Contact | ContactError]:
        """Each distinct request asked once, all at the same time; the answer or the error for each."""
        ...

    def responsible_staff(self, pseudonym: str) -> list[tuple[str, str]]:
        """(person id, relationship) in routing order: personal tutor first, then escalation contacts."""
        ...


class IdentityContacts:
    """The ContactDirectory backed by identity's GetContactDetails and ListResponsibleStaff."""

    def __init__(self, channel: grpc.Channel, timeout_seconds: float = 5.0) -> None:
        self._stub = identity_pb2_grpc.IdentityServiceStub(channel)
        self._timeout = timeout_seconds

    def _details(self, request: ContactRequest) -> Contact:
        answer = self.look_up([request])[request]
        if isinstance(answer, ContactError):
            raise answer
        return answer

    def student(self, pseudonym: str, purpose: str, on_behalf_of: str) -> Contact:
        return self._details(ContactRequest(purpose, on_behalf_of, pseudonym=pseudonym))

    def staff(self, person_id: str, purpose: str, on_behalf_of: str) -> Contact:
        return self._details(ContactRequest(purpose, on_behalf_of, person_id=person_id))

    def look_up(self, requests: Iterable[ContactRequest]) -> dict[ContactRequest, Contact | ContactError]:
        calls = {
            request: self._stub.GetContactDetails.future(
                identity_pb2.GetContactDetailsRequest(
                    pseudonym=request.pseudonym,
                    person_id=request.person_id,
                    purpose=request.purpose,
                    on_behalf_of_person_id=request.on_behalf_of,
                ),
                timeout=self._timeout,
            )
            for request in dict.fromkeys(requests)
        }
        return {request: _answer(call) for request, call in calls.items()}

    def responsible_staff(self, pseudonym: str) -> list[tuple[str, str]]:
        try:
            response = self._stub.ListResponsibleStaff(
                identity_pb2.ListResponsibleStaffRequest(pseudonym=pseudonym), timeout=self._timeout
            )
        except grpc.RpcError as exc:
            if exc.code() == grpc.StatusCode.NOT_FOUND:
                raise ContactUnknown from None
            raise ContactsUnavailable(exc.code().name) from None
        return [(staff.person_id, staff.relationship) for staff in response.staff]


def _answer(call: grpc.Future) -> Contact | ContactError:
    try:
        response = call.result()
    except grpc.RpcError as exc:
        code = exc.code()
        return ContactUnknown() if code == grpc.StatusCode.NOT_FOUND else ContactsUnavailable(code.name)
    if not response.email:
        return ContactUnknown()
    return Contact(preferred_name=response.preferred_name, email=response.email)
