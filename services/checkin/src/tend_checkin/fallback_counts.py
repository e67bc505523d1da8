"""Wrong-code counts kept in this process while Redis is unavailable.

Without Redis, check-ins are still accepted (losing Redis must never lose a check-in), so the guess limit falls back
to a count per process: a guesser then gets at most the limit per worker process and replica, still nowhere near
enough to guess a 6-digit code, instead of unlimited guesses. The counts are forgotten when Redis answers again.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable


class FallbackWrongCodes:
    """Thread-safe; at most `max_entries` students, the least recently counted dropped first."""

    def __init__(self, max_entries: int = 100_000, monotonic: Callable[[], float] = time.monotonic) -> None:
        self._max_entries = max_entries
        self._monotonic = monotonic
        self._counts: OrderedDict[tuple[uuid.UUID, str], tuple[int, float]] = OrderedDict()
        self._lock = threading.Lock()

    def count(self, session_id: uuid.UUID, pseudonym: str) -> int:
        with self._lock:
            entry = self._counts.get((session_id, pseudonym))
            if entry is None or entry[1] <= self._monotonic():
                return 0
            return entry[0]

    def add(self, session_id: uuid.UUID, pseudonym: str, ttl_seconds: float) -> int:
        """Counts one wrong code; returns the count, this one included."""
        key = (session_id, pseudonym)
        now = self._monotonic()
        with self._lock:
            entry = self._counts.get(key)
            count = 1 if entry is None or entry[1] <= now else entry[0] + 1
            self._counts[key] = (count, now + ttl_seconds)
            self._counts.move_to_end(key)
            while len(self._counts) > self._max_entries:
                self._counts.popitem(last=False)
            return count
