"""An in-process cache of teaching sessions for the check-in hot path.

At the start of the hour every student in a lecture theatre asks for the same session within seconds; reading it
from PostgreSQL once per process per few seconds instead of once per check-in keeps the database out of the way.
A short lifetime bounds how long a later change (a corrected time, say) takes to be seen.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable

from tend_checkin.sessions import TeachingSession

SessionLoader = Callable[[uuid.UUID], TeachingSession | None]


class SessionCache:
    """Thread-safe; at most `max_entries` sessions, least recently used dropped first. Misses are cached too, for
    less time, so a stream of made-up session ids cannot turn into a stream of queries."""

    def __init__(
        self,
        load: SessionLoader,
        ttl_seconds: float = 30.0,
        miss_ttl_seconds: float = 5.0,
        max_entries: int = 10_000,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._load = load
        self._ttl = ttl_seconds
        self._miss_ttl = miss_ttl_seconds
        self._max_entries = max_entries
        self._monotonic = monotonic
        self._entries: OrderedDict[uuid.UUID, tuple[float, TeachingSession | None]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, session_id: uuid.UUID) -> TeachingSession | None:
        now = self._monotonic()
        with self._lock:
            entry = self._entries.get(session_id)
            if entry is not None and entry[0] > now:
                self._entries.move_to_end(session_id)
                return entry[1]
        # Loaded outside the lock: two threads may both load the same session once, which is cheaper than making
        # every other session wait behind one query.
        session = self._load(session_id)
        expires = now + (self._ttl if session is not None else self._miss_ttl)
        with self._lock:
            self._entries[session_id] = (expires, session)
            self._entries.move_to_end(session_id)
            while len(self._entries) > self._max_entries:
                self._entries.popitem(last=False)
        return session
