"""Notify's gRPC service for supportive e-mails: preview, send, delivery status and what a person decides after.

Failures map to fixed page messages like every other client. One exception, on purpose: when notify refuses the
text of an enquiry (the word "flag", figures about the student's activity, ...), its message names the rule and the
words that broke it so the sender can fix them. Those words come from the sender's own text or the institution's
template, rendered without any student's values, so showing them back to the sender reveals nothing personal.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from datetime import datetime
from typing import Protocol

import grpc
from tend.notify.v1 import notify_pb2, notify_pb2_grpc

from tend_portal.clients import _optional_datetime
from tend_portal.grpc_calls import (
    DetailsShown,
    ErrorsByCode,
    InvalidArgument,
    ResponseT,
    ServiceCallError,
    call,
    check_health,
)

# Notify's own prefix for a refused text (grpc_api._rejected); only messages starting with it are shown.
_REJECTED_PREFIX = "the enquiry cannot be sent as written: "

STATUS_NAMES = {
    notify_pb2.DELIVERY_STATUS_QUEUED: "queued",
    notify_pb2.DELIVERY_STATUS_DEFERRED: "deferred",
    notify_pb2.DELIVERY_STATUS_SENT: "sent",
    notify_pb2.DELIVERY_STATUS_BOUNCED: "bounced",
    notify_pb2.DELIVERY_STATUS_FAILED: "failed",
    notify_pb2.DELIVERY_STATUS_DELIVERY_UNCERTAIN: "delivery_uncertain",
}
# The choices notify offers for an uncertain delivery, in the order the page offers them.
UNCERTAIN_DECISIONS: tuple[tuple[str, str], ...] = (
    ("confirm_sent", "The student received it (they replied, or the mail server's log shows it): record it as sent"),
    ("resend", "Send it again, accepting that the student may receive two copies"),
    ("cancel", "Do not send it: record it as not sent"),
)
_DECISIONS = {
    "resend": notify_pb2.UNCERTAIN_DELIVERY_DECISION_RESEND,
    "confirm_sent": notify_pb2.UNCERTAIN_DELIVERY_DECISION_CONFIRM_SENT,
    "cancel": notify_pb2.UNCERTAIN_DELIVERY_DECISION_CANCEL,
}


class EnquiryRejected(InvalidArgument):
    """Notify will not send the text as written; `problems` says why, one line each, for the sender."""

    message = "The e-mail cannot be sent as written."

    def __init__(self, method: str, problems: list[str]) -> None:
        super().__init__(method, "INVALID_ARGUMENT")
        self.problems = problems


class NotNow(ServiceCallError):
    message = "That cannot be done to this e-mail now: its delivery status has changed. Look at the case again."
    http_status = 409


class TooManyEnquiries(ServiceCallError):
    message = "You have sent as many e-mails as Tend allows in an hour. Please try again later."
    http_status = 429


class RequestIdUsed(ServiceCallError):
    message = "This form was already used to send a different e-mail. Start a new e-mail from the case."
    http_status = 409


def _rejected(method: str, details: str) -> EnquiryRejected | None:
    if not details.startswith(_REJECTED_PREFIX):
        return None
    return EnquiryRejected(method, [p.strip() for p in details[len(_REJECTED_PREFIX) :].split("; ") if p.strip()])


_ERRORS: ErrorsByCode = {
    grpc.StatusCode.FAILED_PRECONDITION: NotNow,
    grpc.StatusCode.RESOURCE_EXHAUSTED: TooManyEnquiries,
    grpc.StatusCode.ALREADY_EXISTS: RequestIdUsed,
}
_DETAILS_SHOWN: DetailsShown = {grpc.StatusCode.INVALID_ARGUMENT: _rejected}


@dataclasses.dataclass(frozen=True)
class Preview:
    subject: str
    body: str
    placeholders: tuple[str, ...]
    rendered_subject: str
    rendered_text: str


@dataclasses.dataclass(frozen=True)
class EnquiryStatus:
    request_id: str
    status: str
    attempts: int = 0
    next_attempt_at: datetime | None = None
    reason: str = ""
    updated_at: datetime | None = None
    # Where the follow-up reminders stand once sent, in notify's plain words ("reminders stopped: ..."); empty before.
    follow_up: str = ""


class NotifyApi(Protocol):
    def preview(self, actor_assertion: str, student_pseudonym: str, subject: str = "", body: str = "") -> Preview: ...
    def request(
        self, actor_assertion: str, request_id: str, student_pseudonym: str, case_id: str, subject: str, body: str
    ) -> EnquiryStatus: ...
    def status(self, actor_assertion: str, request_id: str) -> EnquiryStatus: ...
    def resolve_uncertain(self, actor_assertion: str, request_id: str, decision: str) -> str: ...
    def record_answered(self, actor_assertion: str, request_id: str) -> None: ...
    def check_health(self) -> None: ...


class NotifyClient:
    """Notify's gRPC service, over the app's one channel to notify (see channels.py)."""

    def __init__(self, channel: grpc.Channel, timeout_seconds: float = 5.0) -> None:
        self._channel = channel
        self._stub = notify_pb2_grpc.NotifyServiceStub(self._channel)
        self._timeout = timeout_seconds

    def _call(self, method: str, stub_method: Callable[..., ResponseT], request: object) -> ResponseT:
        return call(method, stub_method, request, self._timeout, errors=_ERRORS, details_shown=_DETAILS_SHOWN)

    def preview(self, actor_assertion: str, student_pseudonym: str, subject: str = "", body: str = "") -> Preview:
        """The template's text (or the edited text) and how it renders for this student and sender now."""
        request = notify_pb2.PreviewEnquiryRequest(
            actor_assertion=actor_assertion, student_pseudonym=student_pseudonym, subject=subject, body=body
        )
        response = self._call("PreviewEnquiry", self._stub.PreviewEnquiry, request)
        return Preview(
            subject=response.subject,
            body=response.body,
            placeholders=tuple(response.placeholders),
            rendered_subject=response.rendered.subject,
            rendered_text=response.rendered.text_body,
        )

    def request(
        self, actor_assertion: str, request_id: str, student_pseudonym: str, case_id: str, subject: str, body: str
    ) -> EnquiryStatus:
        """Asks notify to send; the same `request_id` is never sent twice."""
        request = notify_pb2.RequestEnquiryRequest(
            actor_assertion=actor_assertion,
            request_id=request_id,
            student_pseudonym=student_pseudonym,
            case_id=case_id,
            subject=subject,
            body=body,
        )
        response = self._call("RequestEnquiry", self._stub.RequestEnquiry, request)
        return EnquiryStatus(response.request_id, STATUS_NAMES.get(response.status, "queued"))

    def status(self, actor_assertion: str, request_id: str) -> EnquiryStatus:
        request = notify_pb2.GetEnquiryStatusRequest(actor_assertion=actor_assertion, request_id=request_id)
        response = self._call("GetEnquiryStatus", self._stub.GetEnquiryStatus, request)
        return EnquiryStatus(
            request_id=response.request_id,
            status=STATUS_NAMES.get(response.status, "queued"),
            attempts=response.attempts,
            next_attempt_at=_optional_datetime(response.next_attempt_at),
            reason=response.reason,
            updated_at=_optional_datetime(response.updated_at),
            follow_up=response.follow_up,
        )

    def resolve_uncertain(self, actor_assertion: str, request_id: str, decision: str) -> str:
        """Records the person's decision about an uncertain delivery; returns the new status."""
        request = notify_pb2.ResolveUncertainDeliveryRequest(
            actor_assertion=actor_assertion, request_id=request_id, decision=_DECISIONS[decision]
        )
        response = self._call("ResolveUncertainDelivery", self._stub.ResolveUncertainDelivery, request)
        return STATUS_NAMES.get(response.status, "queued")

    def record_answered(self, actor_assertion: str, request_id: str) -> None:
        request = notify_pb2.RecordEnquiryAnsweredRequest(actor_assertion=actor_assertion, request_id=request_id)
        self._call("RecordEnquiryAnswered", self._stub.RecordEnquiryAnswered, request)

    def check_health(self) -> None:
        check_health(self._channel, self._timeout)
