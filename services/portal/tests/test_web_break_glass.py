"""Break-glass requests: the student number is mapped to a pseudonym through identity, identity grants (or refuses)
with the written reason, and the page shows when access ends."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import grpc
import pytest
from tend.identity.v1 import identity_pb2, identity_pb2_grpc

from services.portal.tests.conftest import (
    IDENTITY_SERVICE,
    STAFF,
    FakeIdentity,
    PortalBrowser,
    _timestamp,
    abort,
    assertion_for,
    serving,
)
from tend_common.grpc_server import GrpcServer

NUMBER = "S7000123"
PSEUDONYM = "p_zz9"
REASON = "Student reported missing by family; welfare check tonight"
EXPIRES = datetime(2026, 10, 5, 10, 30, tzinfo=UTC)


class GrantingIdentity(FakeIdentity):
    def __init__(self) -> None:
        super().__init__()
        self.requests: list[identity_pb2.RequestBreakGlassRequest] = []

    def MapToPseudonyms(
        self, request: identity_pb2.MapToPseudonymsRequest, context: grpc.ServicerContext
    ) -> identity_pb2.MapToPseudonymsResponse:
        if request.kind != identity_pb2.IDENTIFIER_KIND_STUDENT_NUMBER:
            abort(context, grpc.StatusCode.INVALID_ARGUMENT, "kind")
        known = {NUMBER: PSEUDONYM}
        return identity_pb2.MapToPseudonymsResponse(pseudonyms={n: known[n] for n in request.identifiers if n in known})

    def RequestBreakGlass(
        self, request: identity_pb2.RequestBreakGlassRequest, context: grpc.ServicerContext
    ) -> identity_pb2.RequestBreakGlassResponse:
        self.requests.append(request)
        if request.actor_assertion != assertion_for(STAFF, "identity"):
            abort(context, grpc.StatusCode.PERMISSION_DENIED, "only staff")
        grant = identity_pb2.BreakGlassGrant(
            grant_id=str(uuid.uuid4()),
            staff_person_id=STAFF.person_id,
            student_person_id=str(uuid.uuid4()),
            reason=request.reason,
            granted_at=_timestamp(EXPIRES - timedelta(hours=1)),
            expires_at=_timestamp(EXPIRES),
        )
        return identity_pb2.RequestBreakGlassResponse(grant=grant)


@pytest.fixture
def fake_identity() -> Iterator[tuple[FakeIdentity, GrpcServer]]:
    yield from serving(GrantingIdentity(), identity_pb2_grpc.add_IdentityServiceServicer_to_server, IDENTITY_SERVICE)


def _requests(identity: FakeIdentity) -> list[identity_pb2.RequestBreakGlassRequest]:
    assert isinstance(identity, GrantingIdentity)
    return identity.requests


def test_staff_are_granted_access_and_told_until_when(signed_in_staff: PortalBrowser, identity: FakeIdentity) -> None:
    form = signed_in_staff.get("/break-glass").get_data(as_text=True)
    assert '<label for="student">' in form
    assert '<label for="reason">' in form

    response = signed_in_staff.post("/break-glass", {"student": NUMBER, "reason": REASON})

    page = response.get_data(as_text=True)
    assert response.status_code == 200, page
    assert "Access granted until 10:30 on 05 Oct 2026 UTC" in page
    [sent] = _requests(identity)
    assert (sent.student, sent.reason) == (PSEUDONYM, REASON)  # identity gets the pseudonym, never the number


def test_a_short_reason_or_missing_student_is_refused_before_asking(
    signed_in_staff: PortalBrowser, identity: FakeIdentity
) -> None:
    response = signed_in_staff.post("/break-glass", {"student": "", "reason": "urgent"})
    page = response.get_data(as_text=True)
    assert response.status_code == 400
    assert "Enter the student number." in page
    assert "in at least 20 characters" in page
    assert _requests(identity) == []


def test_an_unknown_student_number_is_named(signed_in_staff: PortalBrowser, identity: FakeIdentity) -> None:
    response = signed_in_staff.post("/break-glass", {"student": "S0000000", "reason": REASON})
    assert response.status_code == 400
    assert "There is no student with that student number." in response.get_data(as_text=True)
    assert _requests(identity) == []


def test_students_cannot_ask(signed_in_student: PortalBrowser, identity: FakeIdentity) -> None:
    assert signed_in_student.get("/break-glass").status_code == 403
    assert signed_in_student.post("/break-glass", {"student": NUMBER, "reason": REASON}).status_code == 403
    assert _requests(identity) == []


def test_the_request_needs_the_csrf_token(signed_in_staff: PortalBrowser, identity: FakeIdentity) -> None:
    response = signed_in_staff.post("/break-glass", {"student": NUMBER, "reason": REASON}, with_csrf=False)
    assert response.status_code == 400
    assert _requests(identity) == []
