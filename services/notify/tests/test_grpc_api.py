"""The NotifyService API over real gRPC, with the portal's service credential and staff assertions from the fake
identity: preview and edit, the content rules' messages, idempotent requests, access refused, the sender limit, and
the follow-up calls."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass, replace

import grpc
import psycopg
import pytest
from tend.notify.v1 import notify_pb2, notify_pb2_grpc

from services.notify.tests.conftest import Notify, identity_channel
from tend_common.grpc_server import GrpcServer, start_grpc_server
from tend_common.identity_access import IdentityAccessChecker
from tend_common.service_auth import (
    ServiceAuthInterceptor,
    ServiceTokenSigner,
    authenticated_channel,
    generate_service_key,
    parse_trusted_services,
    public_key_text,
)
from tend_notify.access import assertion_verifier
from tend_notify.contacts import IdentityContacts
from tend_notify.grpc_api import SERVICE_NAME, NotifyServicer, register
from tend_notify.guards import RateLimiter, redis_client
from tend_notify.service import METHOD_POLICY
from tend_notify.transport import UNCERTAIN, SendOutcome


@dataclass
class Api:
    stub: notify_pb2_grpc.NotifyServiceStub
    notify: Notify
    target: str

    def assertion(self, person_id: str | None = None, kind: str = "staff") -> str:
        return self.notify.identity.assertion(person_id or self.notify.sender, kind=kind)


@pytest.fixture
def api(notify: Notify) -> Iterator[Api]:
    portal_key = generate_service_key()
    settings = replace(notify.settings, sender_limit_per_hour=3)
    channel = identity_channel(notify.identity)
    client = redis_client(settings.redis_url)
    servicer = NotifyServicer(
        notify.pool,
        settings,
        assertion_verifier(channel),
        IdentityAccessChecker(channel),
        IdentityContacts(channel),
        RateLimiter(client, settings.redis_prefix, clock=lambda: notify.clock().timestamp()),
        clock=notify.clock,
    )
    trusted = parse_trusted_services([f"portal={public_key_text(portal_key)}"])
    server: GrpcServer = start_grpc_server(
        register(servicer), [SERVICE_NAME], 0, interceptors=[ServiceAuthInterceptor("notify", trusted, METHOD_POLICY)]
    )
    target = f"127.0.0.1:{server.port}"
    portal = authenticated_channel(target, ServiceTokenSigner("portal", portal_key), "notify")
    yield Api(notify_pb2_grpc.NotifyServiceStub(portal), notify, target)
    portal.close()
    server.stop(0)
    channel.close()
    client.close()


def _request(api: Api, **fields: object) -> notify_pb2.RequestEnquiryRequest:
    values: dict[str, object] = {
        "actor_assertion": api.assertion(),
        "request_id": str(uuid.uuid4()),
        "student_pseudonym": api.notify.student,
        "case_id": "case-7",
    }
    values.update(fields)
    return notify_pb2.RequestEnquiryRequest(**values)  # type: ignore[arg-type]


def _code(call: object) -> grpc.StatusCode:
    with pytest.raises(grpc.RpcError) as raised:
        call()  # type: ignore[operator]
    error: grpc.Call = raised.value
    return error.code()


def test_preview_renders_for_this_student_and_sender(api: Api) -> None:
    preview = api.stub.PreviewEnquiry(
        notify_pb2.PreviewEnquiryRequest(actor_assertion=api.assertion(), student_pseudonym=api.notify.student)
    )
    assert preview.subject == "How are things going, {student_name}?"
    assert "{support_url}" in preview.body
    assert "student_name" in preview.placeholders
    assert preview.rendered.subject == "How are things going, Sam?"
    assert preview.rendered.text_body.startswith("Dear Sam,")
    assert "Dr Alex Example" in preview.rendered.text_body
    assert "https://www.example.ac.uk/support" in preview.rendered.html_body
    edited = api.stub.PreviewEnquiry(
        notify_pb2.PreviewEnquiryRequest(
            actor_assertion=api.assertion(),
            student_pseudonym=api.notify.student,
            body="Hi {student_name}, fancy a coffee? {support_url}",
        )
    )
    assert edited.rendered.text_body == "Hi Sam, fancy a coffee? https://www.example.ac.uk/support"
    with psycopg.connect(api.notify.settings.database_url) as conn:
        assert conn.execute("SELECT count(*) FROM enquiry_requests").fetchone() == (0,)


def test_an_edit_that_passes_on_indicator_data_is_refused_with_the_reason(api: Api) -> None:
    with pytest.raises(grpc.RpcError) as raised:
        api.stub.RequestEnquiry(
            _request(api, subject="Your engagement flag", body="You missed 4 lectures.\nHelp: {support_url}")
        )
    error: grpc.Call = raised.value
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    details = error.details() or ""
    assert 'subject: an enquiry never says a student was flagged; remove "flag" (line 1)' in details
    assert (
        'body: an enquiry does not quote figures about a student\'s activity; remove "4 lectures" (line 1)' in details
    )
    missing_support = _request(api, body="Dear {student_name}, how are you?")
    assert _code(lambda: api.stub.RequestEnquiry(missing_support)) == grpc.StatusCode.INVALID_ARGUMENT


def test_a_request_is_accepted_once_per_request_id(api: Api) -> None:
    request = _request(api, body="Hi {student_name}. {support_url}")
    first = api.stub.RequestEnquiry(request)
    again = api.stub.RequestEnquiry(request)
    assert first.status == again.status == notify_pb2.DELIVERY_STATUS_QUEUED
    with psycopg.connect(api.notify.settings.database_url) as conn:
        assert conn.execute("SELECT count(*) FROM outbox WHERE type_name LIKE '%EnquiryRequested'").fetchone() == (1,)
    reused = _request(api, request_id=request.request_id, body="Something else. {support_url}")
    assert _code(lambda: api.stub.RequestEnquiry(reused)) == grpc.StatusCode.ALREADY_EXISTS


def test_identity_decides_who_may_write(api: Api) -> None:
    stranger = api.notify.identity.add_staff("Someone Else", "someone@example.ac.uk")
    refused = _request(api, actor_assertion=api.assertion(stranger))
    assert _code(lambda: api.stub.RequestEnquiry(refused)) == grpc.StatusCode.PERMISSION_DENIED
    as_student = _request(api, actor_assertion=api.assertion(str(uuid.uuid4()), kind="student"))
    assert _code(lambda: api.stub.RequestEnquiry(as_student)) == grpc.StatusCode.PERMISSION_DENIED
    forged = _request(api, actor_assertion="not-a-token")
    assert _code(lambda: api.stub.RequestEnquiry(forged)) == grpc.StatusCode.UNAUTHENTICATED
    bad_id = _request(api, request_id="42")
    assert _code(lambda: api.stub.RequestEnquiry(bad_id)) == grpc.StatusCode.INVALID_ARGUMENT


def test_only_the_portal_may_call(api: Api) -> None:
    plain = grpc.insecure_channel(api.target)
    assert _code(lambda: notify_pb2_grpc.NotifyServiceStub(plain).RequestEnquiry(_request(api))) == (
        grpc.StatusCode.UNAUTHENTICATED
    )
    other = authenticated_channel(api.target, ServiceTokenSigner("checkin", generate_service_key()), "notify")
    assert _code(lambda: notify_pb2_grpc.NotifyServiceStub(other).RequestEnquiry(_request(api))) == (
        grpc.StatusCode.UNAUTHENTICATED
    )
    plain.close()
    other.close()


def test_a_sender_is_limited_per_hour_and_told_when_to_retry(api: Api) -> None:
    for _ in range(3):
        api.stub.RequestEnquiry(_request(api))
    with pytest.raises(grpc.RpcError) as raised:
        api.stub.RequestEnquiry(_request(api))
    error: grpc.Call = raised.value
    assert error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert "at most 3 enquiries per member of staff per hour" in (error.details() or "")


def test_status_resolution_and_answer_through_the_api(api: Api) -> None:
    request = _request(api)
    api.stub.RequestEnquiry(request)
    # The relay would publish the event and the intake queue it; here the intake is driven directly.
    api.notify.request(request_id=uuid.UUID(request.request_id), sender_person_id=api.notify.sender)
    api.notify.transport.outcomes = [SendOutcome(UNCERTAIN)]
    assert api.notify.step()
    ask = notify_pb2.GetEnquiryStatusRequest(actor_assertion=api.assertion(), request_id=request.request_id)
    status = api.stub.GetEnquiryStatus(ask)
    assert (status.status, status.attempts) == (notify_pb2.DELIVERY_STATUS_DELIVERY_UNCERTAIN, 1)
    stranger = api.notify.identity.add_staff("Someone Else", "someone@example.ac.uk")
    peek = notify_pb2.GetEnquiryStatusRequest(actor_assertion=api.assertion(stranger), request_id=request.request_id)
    assert _code(lambda: api.stub.GetEnquiryStatus(peek)) == grpc.StatusCode.PERMISSION_DENIED
    answered = notify_pb2.RecordEnquiryAnsweredRequest(actor_assertion=api.assertion(), request_id=request.request_id)
    assert _code(lambda: api.stub.RecordEnquiryAnswered(answered)) == grpc.StatusCode.FAILED_PRECONDITION
    resolved = api.stub.ResolveUncertainDelivery(
        notify_pb2.ResolveUncertainDeliveryRequest(
            actor_assertion=api.assertion(),
            request_id=request.request_id,
            decision=notify_pb2.UNCERTAIN_DELIVERY_DECISION_CONFIRM_SENT,
        )
    )
    assert resolved.status == notify_pb2.DELIVERY_STATUS_SENT
    api.stub.RecordEnquiryAnswered(answered)
    with psycopg.connect(api.notify.settings.database_url) as conn:
        row = conn.execute("SELECT answered_at IS NOT NULL FROM follow_ups").fetchone()
    assert row == (True,)
