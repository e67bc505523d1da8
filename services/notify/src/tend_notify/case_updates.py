"""Notify's consumer of indicators' CaseUpdated: when the student engages again, or the case is closed (by staff, or
by itself when every flag was withdrawn), the pending reminders and escalations of the case's enquiries stop, with
the reason kept for the enquiry's status. Every other change is acknowledged and ignored."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime

from psycopg_pool import ConnectionPool
from tend.indicators.v1 import events_pb2 as indicators_events_pb2

from tend_common.messaging.consumer import Delivery
from tend_common.messaging.inbox import claim_event
from tend_notify import follow_up_store
from tend_notify.events import parse_case_updated

log = logging.getLogger(__name__)

CONSUMER_NAME = "notify.case-updates"
QUEUE_PURPOSE = "case-updates"
Handler = Callable[[Delivery], None]

# The changes that stop follow-ups, and the reason recorded.
STOPPING_CHANGES: dict[int, str] = {
    indicators_events_pb2.CASE_CHANGE_ENGAGEMENT_RESUMED: follow_up_store.ENGAGEMENT_RESUMED,
    indicators_events_pb2.CASE_CHANGE_CLOSED_BY_STAFF: follow_up_store.CASE_CLOSED,
    indicators_events_pb2.CASE_CHANGE_CLOSED: follow_up_store.CASE_CLOSED,
}


def case_update_handler(pool: ConnectionPool, clock: Callable[[], datetime] = lambda: datetime.now(UTC)) -> Handler:
    """Stops the case's follow-ups, committed with the event id before acknowledgement (a redelivery does nothing)."""

    def handle(delivery: Delivery) -> None:
        update = parse_case_updated(delivery)
        reason = STOPPING_CHANGES.get(update.change)
        if reason is None:
            return  # nothing to do, so nothing to remember: acknowledged and ignored
        with pool.connection() as conn, conn.transaction(), conn.cursor() as cur:
            if not claim_event(cur, CONSUMER_NAME, delivery.event_id):
                return
            stopped = follow_up_store.stop_for_case(cur, update.case_id, reason, update.occurred_at or clock())
        log.info(
            "follow-ups stopped by the case",
            extra={"fields": {"case_id": update.case_id, "reason": reason, "stopped": stopped}},
        )

    return handle
