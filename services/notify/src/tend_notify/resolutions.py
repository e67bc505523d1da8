"""What people decide about an enquiry after it left notify's hands: an uncertain delivery, and an answer."""

from __future__ import annotations

import uuid
from datetime import datetime

from psycopg_pool import ConnectionPool

from tend_notify import follow_up_store, message_store

RESEND = "resend"
CONFIRM_SENT = "confirm_sent"
CANCEL = "cancel"


class NotUncertain(Exception):
    """Only an uncertain delivery can be resolved."""

    def __init__(self, status: str) -> None:
        super().__init__(status)
        self.status = status


def resolve_uncertain(pool: ConnectionPool, request_id: uuid.UUID, decision: str, now: datetime) -> str:
    """Applies a person's decision; returns the new status."""
    with pool.connection() as conn, conn.transaction(), conn.cursor() as cur:
        message = message_store.lock_message(cur, request_id)
        if message is None or message.status != "delivery_uncertain":
            raise NotUncertain(message.status if message else "queued")
        if decision == RESEND:
            message_store.set_status(cur, message, "queued", "a person decided to send it again", next_attempt_at=now)
            return "queued"
        if decision == CONFIRM_SENT:
            message_store.set_status(cur, message, "sent", "a person confirmed it was delivered")
            follow_up_store.start(cur, request_id, now)
            return "sent"
        message_store.set_status(cur, message, "failed", "a person decided not to send it")
        return "failed"


def record_answered(pool: ConnectionPool, request_id: uuid.UUID, now: datetime) -> bool:
    """Stops follow-up reminders for a sent enquiry; False when it has not been sent."""
    with pool.connection() as conn, conn.transaction():
        cursor = conn.execute(
            "UPDATE follow_ups SET answered_at = COALESCE(answered_at, %s) WHERE request_id = %s", (now, request_id)
        )
        return cursor.rowcount == 1
