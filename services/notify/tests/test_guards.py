"""Quiet hours in the institution's time zone, rate limits in real Redis (and locally when Redis is away), and the
back-off schedule."""

from __future__ import annotations

import random
import time as clock
from datetime import UTC, datetime, time

import pytest
import redis

from tend_notify.dispatcher import backoff_seconds
from tend_notify.guards import RateLimiter, quiet_until, redis_client
from tend_testing.backends import Backends

LONDON = "Europe/London"


@pytest.mark.parametrize(
    ("now", "until"),
    [
        # Winter (GMT): 21:30 local is quiet until 08:00 the next morning.
        (datetime(2026, 1, 14, 21, 30, tzinfo=UTC), datetime(2026, 1, 15, 8, 0, tzinfo=UTC)),
        # Just after midnight, until 08:00 the same day.
        (datetime(2026, 1, 15, 0, 5, tzinfo=UTC), datetime(2026, 1, 15, 8, 0, tzinfo=UTC)),
        # Summer (BST, UTC+1): 07:30 UTC is 08:30 local, outside; 06:30 UTC is 07:30 local, quiet until 07:00 UTC.
        (datetime(2026, 7, 1, 7, 30, tzinfo=UTC), None),
        (datetime(2026, 7, 1, 6, 30, tzinfo=UTC), datetime(2026, 7, 1, 7, 0, tzinfo=UTC)),
        # The end is exclusive, the start inclusive.
        (datetime(2026, 1, 15, 8, 0, tzinfo=UTC), None),
        (datetime(2026, 1, 15, 21, 0, tzinfo=UTC), datetime(2026, 1, 16, 8, 0, tzinfo=UTC)),
        (datetime(2026, 1, 15, 12, 0, tzinfo=UTC), None),
    ],
)
def test_quiet_hours_follow_the_institutions_clock(now: datetime, until: datetime | None) -> None:
    assert quiet_until(now, LONDON, time(21), time(8)) == until


def test_quiet_hours_within_one_day_and_none() -> None:
    lunch = (time(12), time(13))
    assert quiet_until(datetime(2026, 1, 15, 12, 30, tzinfo=UTC), "UTC", *lunch) == datetime(
        2026, 1, 15, 13, tzinfo=UTC
    )
    assert quiet_until(datetime(2026, 1, 15, 13, 30, tzinfo=UTC), "UTC", *lunch) is None
    assert quiet_until(datetime(2026, 1, 15, 3, 0, tzinfo=UTC), "UTC", time(0), time(0)) is None


def test_rate_limit_is_shared_through_redis(backends: Backends, redis_prefix: str) -> None:
    client = redis.Redis.from_url(backends.redis_url)
    clock = [1_000_000.0]
    one, other = (RateLimiter(client, redis_prefix, lambda: clock[0]) for _ in range(2))
    assert [one.acquire("sender:a", 3, 60) for _ in range(2)] == [0.0, 0.0]
    assert other.acquire("sender:a", 3, 60) == 0.0
    assert one.acquire("sender:a", 3, 60) == pytest.approx(20.0)  # the window [999960, 1000020) ends in 20 s
    assert other.acquire("sender:b", 3, 60) == 0.0
    clock[0] += 20
    assert one.acquire("sender:a", 3, 60) == 0.0
    client.close()


def test_rate_limit_counts_locally_when_redis_is_away() -> None:
    limiter = RateLimiter(redis_client("redis://127.0.0.1:1/0"), "x:", lambda: 100.0)
    started = clock.monotonic()
    assert [limiter.acquire("global", 2, 60) > 0 for _ in range(3)] == [False, False, True]
    assert clock.monotonic() - started < 2.0  # one failed connection, then local counting


def test_back_off_grows_exponentially_with_jitter_and_a_cap() -> None:
    rng = random.Random(7)  # noqa: S311 (jitter, not secrets)
    delays = [backoff_seconds(tries, 60, 3600, rng) for tries in range(1, 9)]
    for tries, delay in enumerate(delays, start=1):
        full = min(3600, 60 * 2 ** (tries - 1))
        assert full / 2 <= delay <= full
    spread = {round(backoff_seconds(3, 60, 3600, rng)) for _ in range(50)}
    assert len(spread) > 10  # retries after one outage do not all arrive together
