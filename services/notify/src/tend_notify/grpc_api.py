"""The NotifyService gRPC API, for staff actions made through the portal.

Each call reads: validate the request, authenticate the assertion, ask identity whether the person may write to the
student, then one domain function. Failures carry fixed messages that never echo a name, an address or the text.
"""

from __future__ import annotations

import functools
import logging
import re
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TypeVar

import grpc
from psycopg_pool import ConnectionPool
from tend.notify.v1 import notify_pb2, notify_pb2_grpc

from tend_common.identity_access import AccessChecker, ActorRefused, verify_actor
from tend_common.messaging.envelope import timestamp
from tend_common.tokens import TokenVerifier
from tend_notify import enquiries, follow_up_store, message_store, resolutions, template_store
from tend_notify.access import SEND_ACTION, STUDENT
from tend_notify.contacts import SUPPORTIVE_ENQUIRY, ContactDirectory, ContactsUnavailable, ContactUnknown
from tend_notify.content_rules import Problem
from tend_notify.events import STATUS_VALUES, EnquiryRequest
from tend_notify.guards import RateLimiter
from tend_notify.metrics import ENQUIRIES_REQUESTED
from tend_notify.settings import Settings
from tend_notify.templates import (
    DEFAULT_ENQUIRY_TEMPLATE,
    ENQUIRY,
    PLACEHOLDERS,
    Institution,
    Template,
    check_rendered,
    check_text,
    render,
    render_neutral,
)

log = logging.getLogger(__name__)

SERVICE_NAME: str = notify_pb2.DESCRIPTOR.services_by_name["NotifyService"].full_name

# Pseudonyms, person ids, case ids and template names are opaque identifiers; this shape keeps free text out.
IDENTIFIER = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,127}")
MAX_ASSERTION_LENGTH = 4096
PREVIEW_PURPOSE = "preview a supportive enquiry"
SEND_PURPOSE = "send a supportive enquiry"
VIEW_PURPOSE = "follow up a supportive enquiry"

_DECISIONS = {
    notify_pb2.UNCERTAIN_DELIVERY_DECISION_RESEND: resolutions.RESEND,
    notify_pb2.UNCERTAIN_DELIVERY_DECISION_CONFIRM_SENT: resolutions.CONFIRM_SENT,
    notify_pb2.UNCERTAIN_DELIVERY_DECISION_CANCEL: resolutions.CANCEL,
}


class RpcFailure(Exception):
    """Ends the call with `code` and a fixed message that names what is wrong without echoing values."""

    def __init__(self, code: grpc.StatusCode, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


_Servicer = TypeVar("_Servicer")
_Request = TypeVar("_Request")
_Response = TypeVar("_Response")


def _rpc(
    method: Callable[[_Servicer, _Request, grpc.ServicerContext], _Response],
) -> Callable[[_Servicer, _Request, grpc.ServicerContext], _Response]:
    """RpcFailure becomes its status; anything else becomes INTERNAL with a fixed message, since an exception's text
    may quote a value."""

    @functools.wraps(method)
    def handle(self: _Servicer, request: _Request, context: grpc.ServicerContext) -> _Response:
        try:
            return method(self, request, context)
        except RpcFailure as failure:
            context.abort(failure.code, failure.message)
        except Exception as exc:
            log.exception("request failed", extra={"fields": {"method": method.__name__, "error": type(exc).__name__}})
            context.abort(grpc.StatusCode.INTERNAL, "internal error")
        raise AssertionError("context.abort returned")  # it always raises

    return handle


def _invalid(message: str) -> RpcFailure:
    return RpcFailure(grpc.StatusCode.INVALID_ARGUMENT, message)


def _identifier(value: str, name: str, required: bool = True) -> str:
    if not value and not required:
        return ""
    if not IDENTIFIER.fullmatch(value):
        raise _invalid(f"{name} must be an identifier (letters, digits and . _ : -, at most 128)")
    return value


def _request_id(value: str) -> uuid.UUID:
    try:
        return uuid.UUID(value)
    except ValueError:
        raise _invalid("request_id must be a UUID") from None


def _template_names(institution_id: str, template_name: str) -> tuple[str, str]:
    """The institution (empty for the default) and template a request names, checked as identifiers."""
    institution = _identifier(institution_id, "institution_id", required=False)
    return institution, _identifier(template_name, "template_name", required=False) or DEFAULT_ENQUIRY_TEMPLATE


def _rejected(problems: list[Problem]) -> RpcFailure:
    return _invalid("the enquiry cannot be sent as written: " + "; ".join(str(p) for p in problems))


class NotifyServicer(notify_pb2_grpc.NotifyServiceServicer):
    def __init__(
        self,
        pool: ConnectionPool,
        settings: Settings,
        verifier: TokenVerifier,
        access: AccessChecker,
        contacts: ContactDirectory,
        limiter: RateLimiter,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._pool = pool
        self._settings = settings
        self._verifier = verifier
        self._access = access
        self._contacts = contacts
        self._limiter = limiter
        self._clock = clock

    @_rpc
    def PreviewEnquiry(
        self, request: notify_pb2.PreviewEnquiryRequest, context: grpc.ServicerContext
    ) -> notify_pb2.PreviewEnquiryResponse:
        pseudonym = _identifier(request.student_pseudonym, "student_pseudonym")
        names = _template_names(request.institution_id, request.template_name)
        actor = self._authenticate(request.actor_assertion)
        self._authorise(request.actor_assertion, pseudonym, PREVIEW_PURPOSE)
        institution, template = self._template(*names)
        subject, body = request.subject or template.subject, request.body or template.body
        self._check(subject, body, template, institution)
        try:
            student = self._contacts.student(pseudonym, SUPPORTIVE_ENQUIRY, actor)
            sender = self._contacts.staff(actor, SUPPORTIVE_ENQUIRY, actor)
        except ContactUnknown:
            raise RpcFailure(grpc.StatusCode.NOT_FOUND, "identity does not know this student or sender") from None
        except ContactsUnavailable:
            raise RpcFailure(grpc.StatusCode.UNAVAILABLE, "identity is unavailable; try again") from None
        values = institution.values()
        values.update(student_name=student.preferred_name, sender_name=sender.preferred_name, sender_email=sender.email)
        rendered = render(subject, body, template.html_layout, values)
        return notify_pb2.PreviewEnquiryResponse(
            subject=subject,
            body=body,
            placeholders=list(PLACEHOLDERS[ENQUIRY]),
            rendered=notify_pb2.RenderedMessage(
                subject=rendered.subject, text_body=rendered.text_body, html_body=rendered.html_body
            ),
        )

    @_rpc
    def RequestEnquiry(
        self, request: notify_pb2.RequestEnquiryRequest, context: grpc.ServicerContext
    ) -> notify_pb2.RequestEnquiryResponse:
        request_id = _request_id(request.request_id)
        pseudonym = _identifier(request.student_pseudonym, "student_pseudonym")
        case_id = _identifier(request.case_id, "case_id", required=False)
        names = _template_names(request.institution_id, request.template_name)
        actor = self._authenticate(request.actor_assertion)
        self._authorise(request.actor_assertion, pseudonym, SEND_PURPOSE)
        institution, template = self._template(*names)
        subject, body = request.subject or template.subject, request.body or template.body
        self._check(subject, body, template, institution)
        enquiry = EnquiryRequest(
            request_id=request_id,
            institution_id=institution.id,
            student_pseudonym=pseudonym,
            case_id=case_id,
            sender_person_id=actor,
            template_name=template.name,
            subject=subject,
            body=body,
            requested_at=self._clock(),
        )
        digest = enquiries.fingerprint(enquiry, (request.subject, request.body))
        try:
            with self._pool.connection() as conn:
                status = enquiries.known_status(conn, request_id, digest)
            if status is None:
                self._within_sender_limit(actor)
                status = enquiries.accept(self._pool, enquiry, digest)
        except enquiries.RequestConflict:
            ENQUIRIES_REQUESTED.labels("conflict").inc()
            raise RpcFailure(
                grpc.StatusCode.ALREADY_EXISTS, "this request_id was already used for a different enquiry"
            ) from None
        ENQUIRIES_REQUESTED.labels("accepted").inc()
        log.info("enquiry accepted", extra={"fields": {"request_id": str(request_id), "status": status}})
        return notify_pb2.RequestEnquiryResponse(request_id=str(request_id), status=STATUS_VALUES[status])

    @_rpc
    def GetEnquiryStatus(
        self, request: notify_pb2.GetEnquiryStatusRequest, context: grpc.ServicerContext
    ) -> notify_pb2.GetEnquiryStatusResponse:
        request_id = _request_id(request.request_id)
        self._authorise_for_enquiry(request.actor_assertion, request_id)
        with self._pool.connection() as conn:
            message = message_store.find_message(conn, request_id)
            follow_up = follow_up_store.describe(conn, request_id)
        response = notify_pb2.GetEnquiryStatusResponse(request_id=str(request_id), follow_up=follow_up)
        if message is None:
            response.status = notify_pb2.DELIVERY_STATUS_QUEUED
            return response
        response.status = STATUS_VALUES[message.status]
        response.attempts = message.smtp_attempts
        response.reason = message.reason
        response.updated_at.CopyFrom(timestamp(message.updated_at))
        if message.status in message_store.DUE:
            response.next_attempt_at.CopyFrom(timestamp(message.next_attempt_at))
        return response

    @_rpc
    def ResolveUncertainDelivery(
        self, request: notify_pb2.ResolveUncertainDeliveryRequest, context: grpc.ServicerContext
    ) -> notify_pb2.ResolveUncertainDeliveryResponse:
        request_id = _request_id(request.request_id)
        decision = _DECISIONS.get(request.decision)
        if decision is None:
            raise _invalid("decision must be RESEND, CONFIRM_SENT or CANCEL")
        actor = self._authorise_for_enquiry(request.actor_assertion, request_id)
        try:
            status = resolutions.resolve_uncertain(self._pool, request_id, decision, self._clock())
        except resolutions.NotUncertain as exc:
            raise RpcFailure(
                grpc.StatusCode.FAILED_PRECONDITION,
                f"only an uncertain delivery can be resolved; this enquiry is {exc.status.replace('_', ' ')}",
            ) from None
        log.info(
            "uncertain delivery resolved",
            extra={"fields": {"request_id": str(request_id), "decision": decision, "actor": actor}},
        )
        return notify_pb2.ResolveUncertainDeliveryResponse(status=STATUS_VALUES[status])

    @_rpc
    def RecordEnquiryAnswered(
        self, request: notify_pb2.RecordEnquiryAnsweredRequest, context: grpc.ServicerContext
    ) -> notify_pb2.RecordEnquiryAnsweredResponse:
        request_id = _request_id(request.request_id)
        self._authorise_for_enquiry(request.actor_assertion, request_id)
        if not resolutions.record_answered(self._pool, request_id, self._clock()):
            raise RpcFailure(grpc.StatusCode.FAILED_PRECONDITION, "this enquiry has not been sent")
        return notify_pb2.RecordEnquiryAnsweredResponse()

    # --- steps shared by the calls ---

    def _template(self, institution_id: str, name: str) -> tuple[Institution, Template]:
        with self._pool.connection() as conn:
            institution = template_store.find_institution(conn, institution_id or self._settings.default_institution)
            template = template_store.find_template(conn, institution.id, name) if institution else None
        if institution is None:
            raise RpcFailure(grpc.StatusCode.NOT_FOUND, "no such institution")
        if template is None or template.kind != ENQUIRY:
            raise RpcFailure(grpc.StatusCode.NOT_FOUND, "no enquiry template of that name")
        return institution, template

    def _check(self, subject: str, body: str, template: Template, institution: Institution) -> None:
        problems = check_text(subject, body, ENQUIRY)
        if not problems:
            neutral = render_neutral(subject, body, template.html_layout, institution, self._settings.portal_base_url)
            problems = check_rendered(neutral)
        if problems:
            raise _rejected(problems)

    def _authenticate(self, assertion: str) -> str:
        """The acting person's id from a valid assertion of a member of staff; UNAUTHENTICATED otherwise."""
        if not assertion or len(assertion) > MAX_ASSERTION_LENGTH:
            raise RpcFailure(grpc.StatusCode.UNAUTHENTICATED, "the actor assertion is not valid")
        try:
            actor = verify_actor(self._verifier, assertion)
        except ActorRefused as refused:
            raise RpcFailure(refused.code, refused.details) from None
        if actor.kind != "staff" or not IDENTIFIER.fullmatch(actor.person_id):
            raise RpcFailure(grpc.StatusCode.PERMISSION_DENIED, "only members of staff send enquiries")
        return actor.person_id

    def _authorise(self, assertion: str, pseudonym: str, purpose: str) -> None:
        try:
            decision = self._access.check(assertion, SEND_ACTION, STUDENT, pseudonym, purpose)
        except grpc.RpcError:
            raise RpcFailure(grpc.StatusCode.UNAVAILABLE, "identity is unavailable; try again") from None
        if not decision.allowed:
            raise RpcFailure(grpc.StatusCode.PERMISSION_DENIED, decision.reason or "not allowed")

    def _authorise_for_enquiry(self, assertion: str, request_id: uuid.UUID) -> str:
        """The sender of an enquiry may follow it up; so may anyone identity lets write to the student."""
        actor = self._authenticate(assertion)
        with self._pool.connection() as conn:
            known = enquiries.sender_and_student(conn, request_id)
        if known is None:
            raise RpcFailure(grpc.StatusCode.NOT_FOUND, "no enquiry with this request_id")
        sender, pseudonym = known
        if actor != sender:
            self._authorise(assertion, pseudonym, VIEW_PURPOSE)
        return actor

    def _within_sender_limit(self, actor: str) -> None:
        limit = self._settings.sender_limit_per_hour
        wait = self._limiter.acquire(f"sender:{actor}", limit, 3600)
        if wait > 0:
            ENQUIRIES_REQUESTED.labels("rate_limited").inc()
            raise RpcFailure(
                grpc.StatusCode.RESOURCE_EXHAUSTED,
                f"at most {limit} enquiries per member of staff per hour; try again in {int(wait // 60) + 1} minutes",
            )


def register(servicer: NotifyServicer) -> Callable[[grpc.Server], None]:
    def add(server: grpc.Server) -> None:
        notify_pb2_grpc.add_NotifyServiceServicer_to_server(servicer, server)

    return add
