"""Where to send a message, asked of identity at send time and never stored.

Notify keeps no profile: a student's preferred name and address, and the sender's, are fetched for each attempt and
forgotten once the message is handed over.
"""

from __future__ import annotations

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


class ContactUnknown(Exception):
    """Identity does not know the pseudonym or person (left, erased, or never existed)."""


class ContactsUnavailable(Exception):
    """Identity could not be asked; try again later."""


class ContactDirectory(Protocol):
    def student(self, pseudonym: str, purpose: str, on_behalf_of: str) -> Contact: ...

    def staff(self, person_id: str, purpose: str, on_behalf_of: str) -> Contact: ...

    def responsible_staff(self, pseudonym: str) -> list[tuple[str, str]]:
        """(person id, relationship) in routing order: personal tutor first, then escalation contacts."""
        ...


class IdentityContacts:
    """The ContactDirectory backed by identity's GetContactDetails and ListResponsibleStaff."""

    def __init__(self, channel: grpc.Channel, timeout_seconds: float = 5.0) -> None:
        self._stub = identity_pb2_grpc.IdentityServiceStub(channel)
        self._timeout = timeout_seconds

    def _details(self, request: identity_pb2.GetContactDetailsRequest) -> Contact:
        try:
            response = self._stub.GetContactDetails(request, timeout=self._timeout)
        except grpc.RpcError as exc:
            if exc.code() == grpc.StatusCode.NOT_FOUND:
                raise ContactUnknown from None
            raise ContactsUnavailable(exc.code().name) from None
        if not response.email:
            raise ContactUnknown
        return Contact(preferred_name=response.preferred_name, email=response.email)

    def student(self, pseudonym: str, purpose: str, on_behalf_of: str) -> Contact:
        return self._details(
            identity_pb2.GetContactDetailsRequest(
                pseudonym=pseudonym, purpose=purpose, on_behalf_of_person_id=on_behalf_of
            )
        )

    def staff(self, person_id: str, purpose: str, on_behalf_of: str) -> Contact:
        return self._details(
            identity_pb2.GetContactDetailsRequest(
                person_id=person_id, purpose=purpose, on_behalf_of_person_id=on_behalf_of
            )
        )

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
