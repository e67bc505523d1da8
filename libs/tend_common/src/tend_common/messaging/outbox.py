"""The transactional outbox: an event that accompanies a database change is stored in the same transaction, then
relayed to RabbitMQ with publisher confirms and deleted once confirmed. A crash between the two publishes it again,
with the same event id, so consumers apply it once."""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from typing import Any

import psycopg
from psycopg_pool import ConnectionPool

from tend_common.messaging.envelope import OutgoingEvent
from tend_common.messaging.publisher import EventPublisher, PublishError

log = logging.getLogger(__name__)

_CHANNEL = "tend_outbox"


def add_to_outbox(cursor: psycopg.Cursor[Any], event: OutgoingEvent) -> None:
    """Stores `event` for relaying; call inside the transaction that makes the change it describes."""
    cursor.execute(
        "INSERT INTO outbox (event_id, routing_key, type_name, schema_version, body) VALUES (%s, %s, %s, %s, %s)"
        " ON CONFLICT (event_id) DO NOTHING",
        (event.event_id, event.routing_key, event.type_name, event.schema_version, event.body),
    )
    cursor.execute(f"NOTIFY {_CHANNEL}")


def add_all_to_outbox(cursor: psycopg.Cursor[Any], events: Sequence[OutgoingEvent], notify: bool = True) -> None:
    """add_to_outbox for many events in one statement (a group commit's batch). Without `notify` the relay is not
    woken: it finds the events on its next poll, or on the next wake_relay."""
    if not events:
        return
    cursor.execute(
        "INSERT INTO outbox (event_id, routing_key, type_name, schema_version, body)"
        " SELECT * FROM unnest(%s::text[], %s::text[], %s::text[], %s::int[], %s::bytea[])"
        " ON CONFLICT (event_id) DO NOTHING",
        (
            [event.event_id for event in events],
            [event.routing_key for event in events],
            [event.type_name for event in events],
            [event.schema_version for event in events],
            [event.body for event in events],
        ),
    )
    if notify:
        wake_relay(cursor)


def wake_relay(cursor: psycopg.Cursor[Any]) -> None:
    """Wakes the relay (on commit) to publish what the outbox holds."""
    cursor.execute(f"NOTIFY {_CHANNEL}")


class OutboxRelay:
    """Relays the outbox on its own thread: woken by NOTIFY, and polling in case a notification was missed."""

    def __init__(
        self, pool: ConnectionPool, publisher: EventPublisher, batch_size: int = 200, poll_seconds: float = 1.0
    ) -> None:
        self._pool = pool
        self._publisher = publisher
        self._batch_size = batch_size
        self._poll_seconds = poll_seconds
        self._stopping = threading.Event()
        self._wake = threading.Event()
        self._threads: list[threading.Thread] = []

    def start(self) -> None:
        self._threads = [
            threading.Thread(target=self._listen, name="outbox-listen", daemon=True),
            threading.Thread(target=self._run, name="outbox-relay", daemon=True),
        ]
        for thread in self._threads:
            thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        self._stopping.set()
        self._wake.set()
        for thread in self._threads:
            thread.join(timeout)

    def relay_once(self) -> int:
        """Publishes one batch; returns how many events were confirmed and removed.

        Events confirmed before a failed publish are still removed (the transaction commits), then the failure is
        raised; the rest stay for the next attempt.
        """
        failure: PublishError | None = None
        with self._pool.connection() as conn, conn.transaction(), conn.cursor() as cur:
            cur.execute(
                "SELECT id, event_id, routing_key, type_name, schema_version, body FROM outbox"
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
                cur.execute("DELETE FROM outbox WHERE id = ANY(%s)", (confirmed,))
        if failure is not None:
            raise failure
        return len(confirmed)

    def _run(self) -> None:
        while not self._stopping.is_set():
            try:
                while self.relay_once() == self._batch_size and not self._stopping.is_set():
                    pass
            except (PublishError, psycopg.Error) as exc:
                log.warning("outbox relay failed; will retry", extra={"fields": {"error": type(exc).__name__}})
            self._wake.wait(self._poll_seconds)
            self._wake.clear()

    def _listen(self) -> None:
        while not self._stopping.is_set():
            try:
                with self._pool.connection() as conn:
                    conn.autocommit = True
                    conn.execute(f"LISTEN {_CHANNEL}")
                    for _ in conn.notifies(timeout=self._poll_seconds):
                        self._wake.set()
                    conn.execute(f"UNLISTEN {_CHANNEL}")
            except psycopg.Error:
                self._stopping.wait(self._poll_seconds)
