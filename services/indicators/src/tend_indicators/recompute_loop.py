"""Recomputing in the background of `serve`: every interval, and soon after new engagement arrives (ingest and the
attendance consumer NOTIFY), but not more often than every few seconds while data keeps arriving."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from datetime import date

import psycopg
from psycopg_pool import ConnectionPool

from tend_indicators.ingest.records import CHANGED_CHANNEL

log = logging.getLogger(__name__)

# After a change, wait this long for more to arrive (a file is many transactions), then recompute.
SETTLE_SECONDS = 2.0
# And never start two recomputes closer together than this.
MIN_GAP_SECONDS = 10.0


class RecomputeLoop:
    def __init__(
        self,
        pool: ConnectionPool,
        recompute: Callable[[date], object],
        today: Callable[[], date],
        interval_seconds: float,
        settle_seconds: float = SETTLE_SECONDS,
        min_gap_seconds: float = MIN_GAP_SECONDS,
    ) -> None:
        self._pool = pool
        self._recompute = recompute
        self._today = today
        self._interval = interval_seconds
        self._settle = settle_seconds
        self._min_gap = min_gap_seconds
        self._stopping = threading.Event()
        self._wake = threading.Event()
        self._threads: list[threading.Thread] = []
        self.completed = 0

    def start(self) -> None:
        self._threads = [
            threading.Thread(target=self._listen, name="recompute-listen", daemon=True),
            threading.Thread(target=self._run, name="recompute", daemon=True),
        ]
        for thread in self._threads:
            thread.start()

    def stop(self, timeout: float = 60.0) -> None:
        """Lets a recompute in progress finish (it is one transaction), then stops."""
        self._stopping.set()
        self._wake.set()
        for thread in self._threads:
            thread.join(timeout)

    def wake(self) -> None:
        self._wake.set()

    def _run(self) -> None:
        last_started = float("-inf")
        while not self._stopping.is_set():
            woken = self._wake.wait(self._interval)
            if self._stopping.is_set():
                break
            if woken:
                self._stopping.wait(max(self._settle, self._min_gap - (time.monotonic() - last_started)))
                if self._stopping.is_set():
                    break
            self._wake.clear()
            last_started = time.monotonic()
            try:
                self._recompute(self._today())
                self.completed += 1
            except Exception as exc:
                log.exception("recompute failed; will try again", extra={"fields": {"error": type(exc).__name__}})

    def _listen(self) -> None:
        while not self._stopping.is_set():
            try:
                with self._pool.connection() as conn:
                    conn.autocommit = True
                    conn.execute(f"LISTEN {CHANGED_CHANNEL}")
                    for _ in conn.notifies(timeout=1.0):
                        self._wake.set()
                    conn.execute(f"UNLISTEN {CHANGED_CHANNEL}")
            except psycopg.Error:
                self._stopping.wait(1.0)
