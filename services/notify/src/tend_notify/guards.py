"""Guards on sending: rate limits (per sender and in all) and students' quiet hours.

Rate limits count in Redis, so every notify process shares them; Redis holds nothing that cannot be rebuilt, and when
it cannot be reached each process counts on its own for a while rather than stop sending.
"""

from __future__ import annotations

import logging
import threading
import zoneinfo
from collections.abc import Callable
from datetime import datetime, time, timedelta

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

log = logging.getLogger(__name__)

# After Redis fails, counting stays local this long before Redis is tried again, so an outage does not cost a
# connection timeout per message.
_LOCAL_FOR_SECONDS = 10.0


def redis_client(url: str) -> redis.Redis:
    """A client that fails fast: a rate limit is not worth waiting for."""
    return redis.Redis.from_url(
        url, socket_timeout=0.5, socket_connect_timeout=0.5, retry=Retry(NoBackoff(), 0), health_check_interval=30
    )


class RateLimiter:
    """Fixed-window counters: at most `limit` acquisitions of a key per window."""

    def __init__(self, client: redis.Redis | None, prefix: str, clock: Callable[[], float]) -> None:
        self._client = client
        self._prefix = prefix
        self._clock = clock
        self._lock = threading.Lock()
        self._local: dict[str, int] = {}
        self._local_until = float("-inf")

    def _count(self, key: str, ttl_seconds: int, uses: int = 1) -> int:
        if self._client is not None and self._clock() >= self._local_until:
            try:
                pipe = self._client.pipeline(transaction=False)
                pipe.incrby(key, uses)
                pipe.expire(key, ttl_seconds)
                count, _ = pipe.execute()
                return int(count)
            except redis.RedisError as exc:
                self._local_until = self._clock() + _LOCAL_FOR_SECONDS
                log.warning("rate limits counted locally for now", extra={"fields": {"error": type(exc).__name__}})
        with self._lock:
            if len(self._local) > 10_000:
                self._local.clear()
            self._local[key] = self._local.get(key, 0) + uses
            return self._local[key]

    def acquire(self, name: str, limit: int, window_seconds: int) -> float:
        """Counts one use of `name`; 0.0 when within the limit, otherwise the seconds until the window ends (the use
        is then not allowed, though it was counted)."""
        now = self._clock()
        window = int(now // window_seconds)
        count = self._count(f"{self._prefix}rate:{name}:{window}", window_seconds * 2)
        if count <= limit:
            return 0.0
        return (window + 1) * window_seconds - now

    def acquire_up_to(self, name: str, limit: int, window_seconds: int, wanted: int) -> tuple[int, float]:
        """Counts `wanted` uses of `name` in one round trip; returns how many are within the limit (the first ones)
        and, when not all are, the seconds until the window ends (the others are then not allowed, though counted)."""
        now = self._clock()
        window = int(now // window_seconds)
        count = self._count(f"{self._prefix}rate:{name}:{window}", window_seconds * 2, wanted)
        allowed = max(0, min(wanted, limit - (count - wanted)))
        return allowed, (0.0 if allowed == wanted else (window + 1) * window_seconds - now)


def quiet_until(now: datetime, time_zone: str, start: time, end: time) -> datetime | None:
    """When the quiet hours that `now` falls in end (in UTC terms, aware), or None outside them.

    Quiet hours are a local time range in the institution's zone; a range that wraps midnight (21:00 to 08:00) is
    usual. Equal start and end mean none.
    """
    if start == end:
        return None
    zone = zoneinfo.ZoneInfo(time_zone)
    local = now.astimezone(zone)
    current = local.time().replace(tzinfo=None)
    inside = start <= current < end if start < end else (current >= start or current < end)
    if not inside:
        return None
    end_day = local.date() if current < end else local.date() + timedelta(days=1)
    return datetime.combine(end_day, end, tzinfo=zone)
