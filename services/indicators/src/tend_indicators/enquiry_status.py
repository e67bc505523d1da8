"""What happened to a supportive enquiry goes back to its case: notify's delivery status (queued, sent, deferred,
bounced, failed, delivery uncertain) and its follow-up reminders become lines of the case's history. Notify declares
the queue (`<ns>.indicators.enquiry-status`) so nothing is lost before indicators consumes it."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import psycopg
from google.protobuf.message import DecodeError
from psycopg_pool import ConnectionPool
from tend.notify.v1 import events_pb2, notify_pb2

from tend_common.messaging.consumer import Delivery, PoisonMessage
from tend_common.messaging.inbox import claim_event
from tend_indicators import case_store, engagement_resumed
from tend_indicators.ingest.records import DEFAULT_TIMEZONE

QUEUE_PURPOSE = "enquiry-status"
DELIVERY_UPDATED = "notify.enquiry_delivery_updated.v1"
REMINDER_DUE = "notify.reminder_due.v1"
ROUTING_KEYS = (DELIVERY_UPDATED, REMINDER_DUE)
CONSUMER_NAME = "indicators.enquiry-status"
SUPPORTED_SCHEMA_VERSIONS = frozenset({1})

_STATUS_TEXT = {
    notify_pb2.DELIVERY_STATUS_QUEUED: "Supportive enquiry queued for sending.",
    notify_pb2.DELIVERY_STATUS_DEFERRED: "Supportive enquiry deferred: the mail server will be tried again",
    notify_pb2.DELIVERY_STATUS_SENT: "Supportive enquiry sent.",
    notify_pb2.DELIVERY_STATUS_BOUNCED: "Supportive enquiry bounced: the address was refused",
    notify_pb2.DELIVERY_STATUS_FAILED: "Supportive enquiry not sent",
    notify_pb2.DELIVERY_STATUS_DELIVERY_UNCERTAIN: (
        "Supportive enquiry delivery uncertain: a person should check before anything is sent again."
    ),
}
_STAGE_TEXT = {
    events_pb2.FOLLOW_UP_STAGE_REMINDER: "No answer yet: the sender was reminded to follow up.",
    events_pb2.FOLLOW_UP_STAGE_ESCALATION: "Still no answer: the escalation contact was told.",
}


@dataclass(frozen=True)
class CaseNote:
    event_id: str
    case_id: uuid.UUID | None
    pseudonym: str
    text: str
    request_id: str = ""
    # When notify reported the enquiry sent; None for other statuses and reminders.
    sent_at: datetime | None = None


def parse(delivery: Delivery) -> CaseNote:
    if delivery.schema_version not in SUPPORTED_SCHEMA_VERSIONS:
        raise PoisonMessage(f"unsupported schema version {delivery.schema_version}")
    try:
        if delivery.routing_key == DELIVERY_UPDATED:
            update = events_pb2.EnquiryDeliveryUpdated.FromString(delivery.body)
            meta, case_id, pseudonym = update.meta, update.case_id, update.student_pseudonym
            request_id = update.request_id
            sent = update.status == notify_pb2.DELIVERY_STATUS_SENT
            text = _STATUS_TEXT.get(update.status)
            if text is None:
                raise PoisonMessage(f"unknown delivery status {update.status}")
            if not text.endswith("."):
                text += f" ({update.reason})." if update.reason else "."
        elif delivery.routing_key == REMINDER_DUE:
            reminder = events_pb2.ReminderDue.FromString(delivery.body)
            meta, case_id, pseudonym = reminder.meta, reminder.case_id, reminder.student_pseudonym
            request_id, sent = reminder.request_id, False
            text = _STAGE_TEXT.get(reminder.stage, "")
            if not text:
                raise PoisonMessage(f"unknown follow-up stage {reminder.stage}")
        else:
            raise PoisonMessage(f"unexpected routing key {delivery.routing_key}")
    except DecodeError as exc:
        raise PoisonMessage("body is not a notify event") from exc
    if meta.event_id != delivery.event_id:
        raise PoisonMessage("message id and event id differ")
    try:
        case = uuid.UUID(case_id) if case_id else None
    except ValueError as exc:
        raise PoisonMessage("case_id is not a UUID") from exc
    sent_at = None
    if sent:
        sent_at = meta.occurred_at.ToDatetime(tzinfo=UTC) if meta.HasField("occurred_at") else None
        if sent_at is None:
            raise PoisonMessage("a sent status without occurred_at")
    return CaseNote(delivery.event_id, case, pseudonym, text, request_id, sent_at)


def apply(cursor: psycopg.Cursor[Any], note: CaseNote, now: datetime, timezone: str = DEFAULT_TIMEZONE) -> bool:
    """Adds the note to its case once; an enquiry outside a case, or for a case not of this student, changes
    nothing. A send is remembered, so that the student's next engagement is noted as engagement resumed (and
    engagement already stored, dated after the send, is noted now)."""
    if not claim_event(cursor, CONSUMER_NAME, note.event_id) or note.case_id is None:
        return False
    cursor.execute("SELECT 1 FROM cases WHERE case_id = %s AND student_pseudonym = %s", (note.case_id, note.pseudonym))
    if cursor.fetchone() is None:
        return False
    case_store.add_entry(cursor, note.case_id, note.text, now, enquiry_request_id=note.request_id or None)
    if note.sent_at is not None and note.request_id:
        cursor.execute(
            "INSERT INTO case_enquiries (request_id, case_id, student_pseudonym, sent_at) VALUES (%s, %s, %s, %s)"
            " ON CONFLICT (request_id) DO NOTHING",
            (note.request_id, note.case_id, note.pseudonym, note.sent_at),
        )
        engagement_resumed.after_send(cursor, note.request_id, timezone, now)
    return True


def handler(
    pool: ConnectionPool, timezone: str = DEFAULT_TIMEZONE, clock: Callable[[], datetime] = lambda: datetime.now(UTC)
) -> Callable[[Delivery], None]:
    def handle(delivery: Delivery) -> None:
        note = parse(delivery)
        with pool.connection() as conn, conn.transaction(), conn.cursor() as cur:
            apply(cur, note, clock(), timezone)

    return handle
