"""A cache of the organisation facts access decisions read, dropped whenever those facts change.

The same few people ask about the same resources again and again (a lecturer's pages ask about the same module run
on every request), so a decision need not read the database each time. Correctness rests on invalidation: triggers
on every table a decision reads (migration 0003) send a notification on commit, from any process (the importer,
another identity replica); a thread here listens and drops the whole cache on each one.

- A value read before a change committed is never kept past that change's notification: each entry is stored only
  if no notification arrived while it was being read, and any entry stored earlier is dropped by the notification.
- While the listening connection is down nothing is served from the cache (every decision reads the database), and
  the cache is emptied when listening resumes, since notifications may have been missed.
- An entry is also dropped after `max_age_seconds`, which bounds staleness even if a notification were lost without
  the connection failing.

So a change takes effect for decisions once its notification reaches this process (normally well under a
millisecond after the commit), not at the instant of the commit.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Hashable
from typing import TypeVar

import psycopg

from tend_identity.metrics import FACTS_CACHE

log = logging.getLogger(__name__)

CHANNEL = "tend_identity_facts"
_HIT, _MISS, _BYPASS = (FACTS_CACHE.labels(result) for result in ("hit", "miss", "bypass"))

_Value = TypeVar("_Value")


def _always(_value: object) -> bool:
    return True


class FactsCache:
    """Thread-safe; `start` begins listening (and waits briefly until it does), `stop` ends it."""

    def __init__(
        self,
        dsn: str,
        max_entries: int = 100_000,
        max_age_seconds: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._dsn = dsn
        self._max_entries = max_entries
        self._max_age = max_age_seconds
        self._clock = clock
        self._lock = threading.Lock()
        self._entries: dict[Hashable, tuple[float, object]] = {}
        self._generation = 0
        self._listening = False
        self._ready = threading.Event()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self, wait_seconds: float = 5.0) -> FactsCache:
        self._thread = threading.Thread(target=self._listen, name="facts-cache-listen", daemon=True)
        self._thread.start()
        self._ready.wait(wait_seconds)
        return self

    def stop(self, timeout: float = 5.0) -> None:
        self._stopping.set()
        if self._thread is not None:
            self._thread.join(timeout)

    @property
    def listening(self) -> bool:
        return self._listening

    def get(self, key: Hashable, load: Callable[[], _Value], keep: Callable[[_Value], bool] = _always) -> _Value:
        """The cached value for `key`, or `load()`'s, kept when `keep` says so and no change arrived meanwhile."""
        now = self._clock()
        with self._lock:
            usable = self._listening
            generation = self._generation
            entry = self._entries.get(key) if usable else None
        if entry is not None and entry[0] > now:
            _HIT.inc()
            return entry[1]  # type: ignore[return-value]  # stored under this key by the same load
        (_MISS if usable else _BYPASS).inc()
        value = load()
        if usable and keep(value):
            with self._lock:
                if self._listening and self._generation == generation:
                    if len(self._entries) >= self._max_entries:
                        self._entries.clear()
                    self._entries[key] = (now + self._max_age, value)
        return value

    def invalidate(self) -> None:
        with self._lock:
            self._generation += 1
            self._entries.clear()

    def _set_listening(self, listening: bool) -> None:
        with self._lock:
            self._listening = listening
            self._generation += 1
            self._entries.clear()

    def _listen(self) -> None:
        while not self._stopping.is_set():
            try:
                with psycopg.connect(self._dsn, autocommit=True, connect_timeout=5) as conn:
                    conn.execute(f"LISTEN {CHANNEL}")
                    self._set_listening(True)
                    self._ready.set()
                    while not self._stopping.is_set():
                        for _ in conn.notifies(timeout=1.0):
                            self.invalidate()
            except psycopg.Error as exc:
                log.warning(
                    "facts cache not listening; deciding from the database",
                    extra={"fields": {"error": type(exc).__name__}},
                )
            finally:
                self._set_listening(False)
            self._ready.set()
            self._stopping.wait(1.0)
