"""The in-process session cache, with a fake monotonic clock."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from tend_checkin.session_cache import SessionCache
from tend_checkin.sessions import TeachingSession, plan_session


class Loader:
    def __init__(self) -> None:
        self.sessions: dict[uuid.UUID, TeachingSession] = {}
        self.calls = 0

    def __call__(self, session_id: uuid.UUID) -> TeachingSession | None:
        self.calls += 1
        return self.sessions.get(session_id)


class Monotonic:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def make_session() -> TeachingSession:
    start = datetime(2026, 10, 5, 9, 0, tzinfo=UTC)
    return plan_session("run-1", "LT1", start, timedelta(hours=1), timedelta(minutes=10), "p")


def test_a_session_is_loaded_once_until_it_expires() -> None:
    loader, clock = Loader(), Monotonic()
    cache = SessionCache(loader, ttl_seconds=30, monotonic=clock)
    session = make_session()
    loader.sessions[session.id] = session
    assert cache.get(session.id) == session
    clock.now += 29
    assert cache.get(session.id) == session
    assert loader.calls == 1
    clock.now += 2
    assert cache.get(session.id) == session
    assert loader.calls == 2


def test_misses_are_cached_for_less_time() -> None:
    loader, clock = Loader(), Monotonic()
    cache = SessionCache(loader, ttl_seconds=30, miss_ttl_seconds=5, monotonic=clock)
    session = make_session()
    assert cache.get(session.id) is None
    loader.sessions[session.id] = session
    clock.now += 4
    assert cache.get(session.id) is None
    clock.now += 2
    assert cache.get(session.id) == session
    assert loader.calls == 2


def test_least_recently_used_is_dropped_first() -> None:
    loader, clock = Loader(), Monotonic()
    cache = SessionCache(loader, max_entries=2, monotonic=clock)
    first, second, third = make_session(), make_session(), make_session()
    for session in (first, second, third):
        loader.sessions[session.id] = session
    cache.get(first.id)
    cache.get(second.id)
    cache.get(first.id)  # first is now the most recently used
    cache.get(third.id)  # evicts second
    calls = loader.calls
    cache.get(first.id)
    assert loader.calls == calls
    cache.get(second.id)
    assert loader.calls == calls + 1
