"""Attempts left unfinished by a process that stopped, resolved without guessing.

Each sending process holds a PostgreSQL advisory lock for as long as it lives (on a connection of its own), and
stamps every attempt with that lock's key. The server releases the lock the moment the process dies, however it dies,
so "can I take this key's lock?" tells a dead owner from a live one without clocks or timeouts. An attempt of a dead
owner is resolved by how far it got:
- 'started': the whole message had not been handed over, so the server cannot have accepted it; it is retried;
- 'data_sent': it may or may not have been accepted; it becomes "delivery uncertain" and is not resent, because a
  second copy does real harm. A person decides (ResolveUncertainDelivery).
"""

from __future__ import annotations

import logging
import secrets
import threading
from datetime import datetime

import psycopg
from psycopg_pool import ConnectionPool

from tend_notify import message_store

log = logging.getLogger(__name__)

INTERRUPTED_REASON = "sending was interrupted before the message was handed over; it will be sent again"
UNCERTAIN_REASON = (
    "notify stopped after handing the message to the mail server and before its answer: it may or may not have"
    " been delivered, so it is not sent again unless a person decides to"
)


class ProcessLease:
    """This process's advisory lock, held on a dedicated connection until `release` (or the process's death)."""

    def __init__(self, dsn: str) -> None:
        self.key = secrets.randbits(62) + 1
        self._dsn = dsn
        self._lock = threading.Lock()
        self._conn: psycopg.Connection[tuple[object, ...]] | None = None
        self.acquire()

    def acquire(self) -> None:
        with self._lock:
            if self._conn is not None and not self._conn.closed:
                return
            conn = psycopg.connect(self._dsn, autocommit=True)
            conn.execute("SELECT pg_advisory_lock(%s)", (self.key,))
            self._conn = conn

    def healthy(self) -> bool:
        """Whether the lock is still held (the connection answers); re-takes it after a lost connection."""
        try:
            with self._lock:
                if self._conn is not None and not self._conn.closed:
                    self._conn.execute("SELECT 1")
                    return True
        except psycopg.Error:
            with self._lock:
                self._conn = None
        try:
            self.acquire()
        except psycopg.Error:
            return False
        return True

    def release(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None


def _owner_is_dead(conn: psycopg.Connection[tuple[object, ...]], owner_key: int) -> bool:
    row = conn.execute("SELECT pg_try_advisory_lock(%s)", (owner_key,)).fetchone()
    return bool(row and row[0])


def recover_abandoned_attempts(pool: ConnectionPool, own_key: int, max_attempts: int, now: datetime) -> int:
    """Resolves the unfinished attempts of every owner that is no longer alive; returns how many."""
    resolved = 0
    with pool.connection() as conn:
        conn.autocommit = True
        try:
            for owner in message_store.unfinished_owners(conn, own_key):
                if not _owner_is_dead(conn, owner):
                    continue
                try:
                    resolved += _resolve_owner(conn, owner, max_attempts, now)
                finally:
                    conn.execute("SELECT pg_advisory_unlock(%s)", (owner,))
        finally:
            conn.autocommit = False
    return resolved


def _resolve_owner(conn: psycopg.Connection[tuple[object, ...]], owner: int, max_attempts: int, now: datetime) -> int:
    with conn.transaction(), conn.cursor() as cur:
        attempts = message_store.lock_unfinished_attempts(cur, owner)
        for request_id, attempt, phase in attempts:
            outcome = "uncertain" if phase == "data_sent" else "interrupted"
            message = message_store.finish_attempt(cur, request_id, attempt, outcome, None, "")
            log.info(
                "abandoned attempt resolved",
                extra={"fields": {"request_id": str(request_id), "attempt": attempt, "phase": phase}},
            )
            if message is None or message.status != "sending":
                continue
            if phase == "data_sent":
                message_store.set_status(cur, message, "delivery_uncertain", UNCERTAIN_REASON)
            elif message.tries >= max_attempts:
                message_store.set_status(cur, message, "failed", "attempts used up; " + INTERRUPTED_REASON)
            else:
                message_store.set_status(cur, message, "deferred", INTERRUPTED_REASON, next_attempt_at=now)
    return len(attempts)
