"""Group commit for the audit records of access decisions.

A decision is answered only once its audit record is committed (to the outbox, from where the relay publishes it).
Committing each record on its own costs a transaction and a WAL flush per decision. Here the records of decisions
made at the same moment share one commit, in the manner of PostgreSQL's own group commit: a decision finding no
commit under way commits its record itself, together with every record queued at that moment; decisions arriving
while a commit is under way queue, and the first of them to find the commit finished commits the whole queue.
Alone, a decision pays one INSERT in its own thread (no hand-over to another thread); under load, one INSERT serves
many decisions.

Each caller still waits for the commit of its own record, so "recorded before answered" holds for every decision,
and a failed or late commit fails the decision instead of answering it.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import psycopg

from tend_common.messaging.envelope import OutgoingEvent
from tend_common.messaging.outbox import add_all_to_outbox, wake_relay
from tend_identity.metrics import AUDIT_BATCH_SIZE

log = logging.getLogger(__name__)


class AuditNotRecorded(Exception):
    """The audit record could not be committed in time; the decision it belongs to must not be answered."""


@dataclass
class _Waiting:
    event: OutgoingEvent
    done: bool = False
    failed: bool = False


class AuditWriter:
    """Thread-safe. `record` blocks until its record is committed.

    The outbox relay is woken by a thread of its own, at most once per `relay_wake_seconds`, rather than by every
    commit: each wake costs the relay a transaction, which at one commit per decision cost more than the decision.
    A record reaches the broker at most that much later; it is committed, and so safe, before the decision is
    answered either way."""

    def __init__(
        self,
        dsn: str,
        wait_seconds: float = 5.0,
        relay_wake_seconds: float = 0.05,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._dsn = dsn
        self._wait_seconds = wait_seconds
        self._relay_wake_seconds = relay_wake_seconds
        self._clock = clock
        self._conn: psycopg.Connection[Any] | None = None
        self._wake_conn: psycopg.Connection[Any] | None = None
        self._turn = threading.Condition()
        self._queue: list[_Waiting] = []
        self._committing = False
        self._stopping = False
        self._relay_owed = threading.Event()
        self._relay_stopping = threading.Event()
        self._relay_thread: threading.Thread | None = None
        self.batches_committed = 0

    def start(self) -> AuditWriter:
        self._relay_thread = threading.Thread(target=self._wake_relay_when_owed, name="audit-relay-wake", daemon=True)
        self._relay_thread.start()
        return self

    def stop(self, timeout: float = 10.0) -> None:
        """Refuses new records, lets a commit under way finish, and wakes the relay one last time."""
        with self._turn:
            self._stopping = True
            self._turn.wait_for(lambda: not self._committing and not self._queue, timeout)
            self._drop_connection()
        self._relay_stopping.set()
        if self._relay_thread is not None:
            self._relay_thread.join(timeout)

    @property
    def queued(self) -> int:
        """Records waiting for the next commit (not those of the commit under way)."""
        with self._turn:
            return len(self._queue)

    def record(self, event: OutgoingEvent) -> None:
        """Returns once `event` is committed; raises AuditNotRecorded if the commit failed or took too long. A record
        that timed out may still be committed later: an audit trail may hold a decision nobody heard, never the
        reverse."""
        waiting = _Waiting(event)
        deadline = self._clock() + self._wait_seconds
        with self._turn:
            if self._stopping:
                raise AuditNotRecorded("the audit writer has stopped")
            self._queue.append(waiting)
            while not waiting.done and self._committing:
                remaining = deadline - self._clock()
                if remaining <= 0:
                    raise AuditNotRecorded("the audit record was not committed in time")
                self._turn.wait(remaining)
            batch: list[_Waiting] = []
            if not waiting.done:
                # No commit under way and this record not yet committed: this caller commits the queue.
                self._committing = True
                batch, self._queue = self._queue, []
        if batch:
            try:
                self._commit(batch)
            finally:
                with self._turn:
                    self._committing = False
                    self._turn.notify_all()
        if waiting.failed:
            raise AuditNotRecorded("the audit record was not committed")

    def _connection(self) -> psycopg.Connection[Any]:
        # The writer's own connection, in autocommit: a batch is one INSERT statement, committed as it runs, so it
        # costs one round trip and no BEGIN or COMMIT. A statement that cannot finish in time is cancelled.
        if self._conn is None or self._conn.closed:
            conn = psycopg.connect(self._dsn, autocommit=True, connect_timeout=5)
            conn.execute(f"SET statement_timeout = {max(1, int(self._wait_seconds * 1000))}")
            self._conn = conn
        return self._conn

    def _drop_connection(self) -> None:
        if self._conn is not None:
            self._conn.close()
        self._conn = None

    def _commit(self, batch: list[_Waiting]) -> None:
        """Commits the batch, then marks each record done (and failed, if the commit was not made)."""
        failed = False
        try:
            with self._connection().cursor() as cursor:
                add_all_to_outbox(cursor, [waiting.event for waiting in batch], notify=False)
        except Exception as exc:
            # When the connection broke the commit's outcome is unknown: the batch may be recorded, but it is not
            # answered, which is the safe way round.
            log.error(
                "audit batch not committed", extra={"fields": {"records": len(batch), "error": type(exc).__name__}}
            )
            self._drop_connection()
            failed = True
        else:
            self.batches_committed += 1
            AUDIT_BATCH_SIZE.observe(len(batch))
            self._relay_owed.set()
        with self._turn:
            for waiting in batch:
                waiting.failed = failed
                waiting.done = True

    def _wake_relay_when_owed(self) -> None:
        woken_at = -float("inf")
        while not self._relay_stopping.is_set():
            if not self._relay_owed.wait(0.5):
                continue
            self._relay_stopping.wait(woken_at + self._relay_wake_seconds - self._clock())
            woken_at = self._clock()
            self._relay_owed.clear()
            self._wake_relay()
        if self._relay_owed.is_set():
            self._wake_relay()
        if self._wake_conn is not None:
            self._wake_conn.close()

    def _wake_relay(self) -> None:
        try:
            if self._wake_conn is None or self._wake_conn.closed:
                self._wake_conn = psycopg.connect(self._dsn, autocommit=True, connect_timeout=5)
            with self._wake_conn.cursor() as cursor:
                wake_relay(cursor)
        except psycopg.Error as exc:
            # The relay polls as well; the records are committed and will be published.
            log.warning("could not wake the outbox relay", extra={"fields": {"error": type(exc).__name__}})
            if self._wake_conn is not None:
                self._wake_conn.close()
            self._wake_conn = None
