"""The outbox of indicators' own events. Written like the shared outbox (same columns, same NOTIFY) and relayed by
the same relay over its own table, so an event no queue takes yet waits without blocking the audit records."""

from __future__ import annotations

from typing import Any

import psycopg

from tend_common.messaging.envelope import OutgoingEvent
from tend_common.messaging.outbox import OutboxRelay

TABLE = "case_event_outbox"
# Waiting for a consumer can take a long time; retrying every few seconds is enough, and new events wake the relay.
POLL_SECONDS = 15.0


def add_case_event(cursor: psycopg.Cursor[Any], event: OutgoingEvent) -> None:
    """Stores `event` for relaying; call inside the transaction that makes the change it describes."""
    cursor.execute(
        f"INSERT INTO {TABLE} (event_id, routing_key, type_name, schema_version, body) VALUES (%s, %s, %s, %s, %s)"
        " ON CONFLICT (event_id) DO NOTHING",
        (event.event_id, event.routing_key, event.type_name, event.schema_version, event.body),
    )
    cursor.execute("NOTIFY tend_outbox")


class CaseEventRelay(OutboxRelay):
    """OutboxRelay over indicators' own events table: batches oldest first, each event removed once the broker
    confirmed it; one no queue takes yet stays without holding up the others."""

    table = TABLE
