"""The events notify publishes and consumes, and the ids that make each of them idempotent."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime

from tend.indicators.v1 import events_pb2 as indicators_events_pb2
from tend.notify.v1 import events_pb2, notify_pb2

from tend_common.messaging.consumer import Delivery, PoisonMessage
from tend_common.messaging.decoding import decode_event, require_fields
from tend_common.messaging.envelope import OutgoingEvent, envelope, new_meta, timestamp

SERVICE = "notify"
ENQUIRY_REQUESTED = "notify.enquiry_requested.v1"
ENQUIRY_DELIVERY_UPDATED = "notify.enquiry_delivery_updated.v1"
REMINDER_DUE = "notify.reminder_due.v1"
# Status events are for the case (indicators). Notify declares that queue itself, so that no status is lost (or held
# up behind an unroutable one in the outbox) while indicators does not consume them yet; indicators' consumer must
# use this queue.
CASE_STATUS_CONSUMER = ("indicators", "enquiry-status")
CASE_STATUS_ROUTING_KEYS = (ENQUIRY_DELIVERY_UPDATED, REMINDER_DUE)
# Indicators' case changes: some stop the follow-up reminders of the case's enquiries.
CASE_UPDATED = "indicators.case_updated.v1"
SUPPORTED_SCHEMA_VERSIONS = frozenset({1})

# Event ids are derived from the fact, so that a repeat of the same fact is the same event downstream.
_EVENT_IDS = uuid.UUID("6f0f0e4e-64a4-4c55-9a53-6f5b1f4ad7c1")

STATUS_VALUES = {
    "queued": notify_pb2.DELIVERY_STATUS_QUEUED,
    "sending": notify_pb2.DELIVERY_STATUS_QUEUED,  # in the hands of a sending thread: still queued to the case
    "deferred": notify_pb2.DELIVERY_STATUS_DEFERRED,
    "sent": notify_pb2.DELIVERY_STATUS_SENT,
    "bounced": notify_pb2.DELIVERY_STATUS_BOUNCED,
    "failed": notify_pb2.DELIVERY_STATUS_FAILED,
    "delivery_uncertain": notify_pb2.DELIVERY_STATUS_DELIVERY_UNCERTAIN,
}


def derived_id(*parts: object) -> str:
    return str(uuid.uuid5(_EVENT_IDS, "/".join(str(p) for p in parts)))


@dataclass(frozen=True)
class EnquiryRequest:
    """An accepted enquiry, as the sender asked for it (text with placeholders still to fill)."""

    request_id: uuid.UUID
    institution_id: str
    student_pseudonym: str
    case_id: str
    sender_person_id: str
    template_name: str
    subject: str
    body: str
    requested_at: datetime


def enquiry_requested(request: EnquiryRequest, trace_id: str = "") -> OutgoingEvent:
    message = events_pb2.EnquiryRequested(
        meta=new_meta(SERVICE, event_id=derived_id("requested", request.request_id), request_id=trace_id),
        request_id=str(request.request_id),
        institution_id=request.institution_id,
        student_pseudonym=request.student_pseudonym,
        case_id=request.case_id,
        sender_person_id=request.sender_person_id,
        template_name=request.template_name,
        subject=request.subject,
        body=request.body,
        requested_at=timestamp(request.requested_at),
    )
    return envelope(message, ENQUIRY_REQUESTED)


def parse_enquiry_requested(delivery: Delivery) -> EnquiryRequest:
    """Reads an EnquiryRequested event; one that can never be applied is a PoisonMessage."""
    event = decode_event(delivery, events_pb2.EnquiryRequested, SUPPORTED_SCHEMA_VERSIONS)
    require_fields(
        event,
        "request_id",
        "institution_id",
        "student_pseudonym",
        "sender_person_id",
        "subject",
        "body",
        "requested_at",
    )
    try:
        request_id = uuid.UUID(event.request_id)
    except ValueError as exc:
        raise PoisonMessage("request_id is not a UUID") from exc
    return EnquiryRequest(
        request_id=request_id,
        institution_id=event.institution_id,
        student_pseudonym=event.student_pseudonym,
        case_id=event.case_id,
        sender_person_id=event.sender_person_id,
        template_name=event.template_name,
        subject=event.subject,
        body=event.body,
        requested_at=event.requested_at.ToDatetime(tzinfo=UTC),
    )


@dataclass(frozen=True)
class StatusChange:
    """A message's new status, for the case."""

    request_id: uuid.UUID
    case_id: str
    student_pseudonym: str
    status: str
    attempts: int
    reason: str = ""
    next_attempt_at: datetime | None = None
    # Distinguishes repeated changes to the same status (deferred after each try), so each is its own event.
    sequence: int = 0


def delivery_updated(change: StatusChange) -> OutgoingEvent:
    message = events_pb2.EnquiryDeliveryUpdated(
        meta=new_meta(
            SERVICE, event_id=derived_id("status", change.request_id, change.status, change.sequence, change.attempts)
        ),
        request_id=str(change.request_id),
        case_id=change.case_id,
        student_pseudonym=change.student_pseudonym,
        status=STATUS_VALUES[change.status],
        attempts=change.attempts,
        reason=change.reason,
    )
    if change.next_attempt_at is not None:
        message.next_attempt_at.CopyFrom(timestamp(change.next_attempt_at))
    return envelope(message, ENQUIRY_DELIVERY_UPDATED)


FOLLOW_UP_STAGES = {
    "reminder": events_pb2.FOLLOW_UP_STAGE_REMINDER,
    "escalation": events_pb2.FOLLOW_UP_STAGE_ESCALATION,
}


def reminder_due(
    request_id: uuid.UUID, case_id: str, pseudonym: str, stage: str, recipient_person_id: str, sent_at: datetime
) -> OutgoingEvent:
    message = events_pb2.ReminderDue(
        meta=new_meta(SERVICE, event_id=derived_id("follow-up", request_id, stage)),
        request_id=str(request_id),
        case_id=case_id,
        student_pseudonym=pseudonym,
        stage=FOLLOW_UP_STAGES[stage],
        recipient_person_id=recipient_person_id,
        enquiry_sent_at=timestamp(sent_at),
    )
    return envelope(message, REMINDER_DUE)


@dataclass(frozen=True)
class CaseUpdate:
    """What notify reads of a CaseUpdated event: which case, what changed (a CaseChange value) and when."""

    case_id: str
    change: int
    occurred_at: datetime | None


def parse_case_updated(delivery: Delivery) -> CaseUpdate:
    """Reads a CaseUpdated event; one that can never be applied is a PoisonMessage."""
    event = decode_event(delivery, indicators_events_pb2.CaseUpdated, SUPPORTED_SCHEMA_VERSIONS)
    require_fields(event, "case_id")
    occurred_at = event.meta.occurred_at.ToDatetime(tzinfo=UTC) if event.meta.HasField("occurred_at") else None
    return CaseUpdate(case_id=event.case_id, change=event.change, occurred_at=occurred_at)
