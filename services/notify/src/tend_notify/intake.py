"""Notify's consumer of EnquiryRequested: each request becomes one queued message, however often it is delivered."""

from __future__ import annotations

import logging
from collections.abc import Callable

from psycopg_pool import ConnectionPool

from tend_common.messaging.consumer import Delivery, PoisonMessage
from tend_common.messaging.inbox import claim_event
from tend_common.messaging.outbox import add_to_outbox
from tend_notify import message_store, template_store
from tend_notify.events import StatusChange, delivery_updated, parse_enquiry_requested
from tend_notify.templates import ENQUIRY, check_text

log = logging.getLogger(__name__)

CONSUMER_NAME = "notify.enquiries"
QUEUE_PURPOSE = "enquiries"
Handler = Callable[[Delivery], None]


def enquiry_handler(pool: ConnectionPool, on_queued: Callable[[], None] = lambda: None) -> Handler:
    """Queues the message and publishes "queued" to the case, committed with the event id before acknowledgement."""

    def handle(delivery: Delivery) -> None:
        request = parse_enquiry_requested(delivery)
        problems = check_text(request.subject, request.body, ENQUIRY)
        if problems:
            # Only the rules that were broken: the text itself is never copied into a log or a header.
            raise PoisonMessage(
                "the enquiry breaks the content rules: " + ", ".join(sorted({p.rule for p in problems}))
            )
        with pool.connection() as conn, conn.transaction(), conn.cursor() as cur:
            if not claim_event(cur, CONSUMER_NAME, delivery.event_id):
                return
            template = template_store.find_template(conn, request.institution_id, request.template_name)
            if template is None or template.kind != ENQUIRY:
                raise PoisonMessage("no enquiry template of that name for the institution")
            queued = message_store.insert_message(
                cur,
                request_id=request.request_id,
                kind=ENQUIRY,
                institution_id=request.institution_id,
                template_name=request.template_name,
                subject=request.subject,
                body=request.body,
                not_before=request.requested_at,
                student_pseudonym=request.student_pseudonym,
                sender_person_id=request.sender_person_id,
                case_id=request.case_id,
            )
            if queued:
                status = StatusChange(request.request_id, request.case_id, request.student_pseudonym, "queued", 0)
                add_to_outbox(cur, delivery_updated(status))
        log.info("enquiry queued", extra={"fields": {"request_id": str(request.request_id), "new": queued}})
        on_queued()

    return handle
