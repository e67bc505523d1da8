"""The transactional outbox: an event that accompanies a database change is stored in the same transaction, then
relayed to RabbitMQ with publisher confirms and deleted once confirmed.

The relay's guarantees:
- It takes a batch of rows, oldest first (`FOR UPDATE SKIP LOCKED`, so several relays share the table without
  taking the same rows), publishes them all with their confirms outstanding at once (pipelined, when the publisher
  is a BatchPublisher), then deletes in one statement exactly the rows the broker confirmed, and commits.
- A row the broker refused (nack), returned (a mandatory publish no queue takes) or did not confirm in time stays
  for a later pass; the rest of its batch still goes, and the relay pages on past it, so it does not hold up newer
  events. Rows are attempted oldest first, but confirmed events may arrive out of outbox order.
- A lost connection (or a crash) mid-batch loses nothing: rows not confirmed stay and are published again, with the
  same event id, so an event may arrive twice. Consumers de-duplicate by event id (the inbox); that is the contract.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import psycopg
from psycopg import sql
from psycopg_pool import ConnectionPool

from tend_common.messaging.envelope import OutgoingEvent
from tend_common.messaging.publisher import EventPublisher, PublishError, UnroutableEvent, publish_all

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


@dataclass(frozen=True)
class RelayPass:
    """What one pass over a batch of rows did."""

    selected: int
    confirmed: int
    last_id: int
    failure: PublishError | None
    # Every event that failed was returned as unroutable (the broker is up, just no queue takes them yet).
    only_unroutable: bool = True


class OutboxRelay:
    """Relays the outbox on its own thread: woken by NOTIFY, and polling in case a notification was missed.
    A subclass may relay another table with the same columns by setting `table`."""

    table: ClassVar[str] = "outbox"

    def __init__(
        self, pool: ConnectionPool, publisher: EventPublisher, batch_size: int = 500, poll_seconds: float = 1.0
    ) -> None:
        self._pool = pool
        self._publisher = publisher
        self._batch_size = batch_size
        self._poll_seconds = poll_seconds
        self._stopping = threading.Event()
        self._wake = threading.Event()
        self._threads: list[threading.Thread] = []
        table = sql.Identifier(self.table)
        self._select = sql.SQL(
            "SELECT id, event_id, routing_key, type_name, schema_version, body FROM {} WHERE id > %s"
            " ORDER BY id LIMIT %s FOR UPDATE SKIP LOCKED"
        ).format(table)
        self._delete = sql.SQL("DELETE FROM {} WHERE id = ANY(%s)").format(table)

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
        """Publishes the oldest batch; returns how many events were confirmed and removed.

        The confirmed events are removed (the transaction commits) even when others in the batch failed; then the
        first failure is raised. The events that failed stay for the next attempt.
        """
        relayed = self.relay_batch(after_id=0)
        if relayed.failure is not None:
            raise relayed.failure
        return relayed.confirmed

    def relay_batch(self, after_id: int) -> RelayPass:
        """Publishes the oldest batch of rows with an id above `after_id`, all confirms outstanding at once, and
        removes those the broker confirmed. Raises psycopg.Error if the database fails (nothing is removed then)."""
        with self._pool.connection() as conn, conn.transaction(), conn.cursor() as cur:
            cur.execute(self._select, (after_id, self._batch_size))
            rows = cur.fetchall()
            if not rows:
                return RelayPass(0, 0, after_id, None)
            events = [
                OutgoingEvent(routing_key, event_id, type_name, schema_version, bytes(body))
                for _id, event_id, routing_key, type_name, schema_version, body in rows
            ]
            outcomes = publish_all(self._publisher, events)
            confirmed = [row[0] for row, outcome in zip(rows, outcomes, strict=True) if outcome is None]
            if confirmed:
                cur.execute(self._delete, (confirmed,))
        failures = [outcome for outcome in outcomes if outcome is not None]
        return RelayPass(
            len(rows),
            len(confirmed),
            rows[-1][0],
            failures[0] if failures else None,
            all(isinstance(failure, UnroutableEvent) for failure in failures),
        )

    def _run(self) -> None:
        while not self._stopping.is_set():
            self._drain()
            self._wake.wait(self._poll_seconds)
            self._wake.clear()

    def _drain(self) -> None:
        """Relays batch after batch until the outbox is exhausted. Pages on by id past rows that failed, so an
        event no queue takes yet does not hold up newer ones; they are tried again on the next drain."""
        after_id = 0
        while not self._stopping.is_set():
            try:
                relayed = self.relay_batch(after_id)
            except psycopg.Error as exc:
                log.warning("outbox relay failed; will retry", extra={"fields": {"error": type(exc).__name__}})
                return
            if relayed.failure is not None:
                log.warning(
                    "outbox relay left events unconfirmed; will retry",
                    extra={
                        "fields": {
                            "error": str(relayed.failure),
                            "unconfirmed": relayed.selected - relayed.confirmed,
                        }
                    },
                )
            if relayed.selected < self._batch_size or (relayed.confirmed == 0 and not relayed.only_unroutable):
                # The end of the outbox, or the broker is unreachable or refusing: wait for the next poll or wake.
                return
            after_id = relayed.last_id

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
