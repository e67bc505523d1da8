"""The outbox of indicators' own events. Written like the shared outbox (same columns, same NOTIFY) and relayed by
the same relay over its own table, so an event no queue takes yet waits without blocking the audit records."""

from __future__ import annotations

from typing import Any

import psycopg

from tend_common.messaging.envelope import OutgoingEvent
from tend_common.messaging.outbox import OutboxRelay
from tend_common.messaging.publisher import PublishError

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
    """OutboxRelay over indicators' own events table: oldest first, each removed once the broker confirmed it."""

    def relay_once(self) -> int:
        failure: PublishError | None = None
        with self._pool.connection() as conn, conn.transaction(), conn.cursor() as cur:
            cur.execute(
                f"SELECT id, event_id, routing_key, type_name, schema_version, body FROM {TABLE}"
                " ORDER BY id LIMIT %s FOR UPDATE SKIP LOCKED",
                (self._batch_size,),
            )
            confirmed: list[int] = []
            for row_id, event_id, routing_key, type_name, schema_version, body in cur.fetchall():
                try:
                    self._publisher.publish(
                        OutgoingEvent(routing_key, event_id, type_name, schema_version, bytes(body))
                    )
                except PublishError as exc:
                    failure = exc
                    break
                confirmed.append(row_id)
            if confirmed:
                cur.execute(f"DELETE FROM {TABLE} WHERE id = ANY(%s)", (confirmed,))
        if failure is not None:
            raise failure
        return len(confirmed)
