"""Short-lived marks in Redis that a student has checked in to a session, so a repeat is answered without
publishing again.

A mark is a speed-up, never the record: the record is the confirmed event, and downstream de-duplicates by event
id. A mark is first "pending" (set with SET NX before publishing) and becomes "confirmed" once the broker confirmed
the event. A repeat that finds a pending mark publishes the very same event again rather than claiming success
for a publish that may still fail. Every Redis failure surfaces as MarksUnavailable so the caller can carry on
without marks.
"""

from __future__ import annotations

import enum
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import redis

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)
_PENDING = "p"
_CONFIRMED = "c"

# Deletes the mark only if it still holds the pending value this request wrote, so a failed publish never removes
# a mark that a concurrent repeat has since confirmed.
_RELEASE_SCRIPT = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
    return redis.call('DEL', KEYS[1])
end
return 0
"""


class MarksUnavailable(Exception):
    """Redis did not answer; check-ins go on without marks."""


class MarkState(enum.Enum):
    # This request set the mark: it is the first check-in of the student to the session.
    CLAIMED = "claimed"
    # An earlier request set the mark and its event is not confirmed yet (or its confirmation was not recorded).
    PENDING = "pending"
    # An earlier request's event was confirmed by the broker.
    CONFIRMED = "confirmed"


@dataclass(frozen=True)
class Mark:
    state: MarkState
    # When the first check-in was recorded; a repeat reports (and republishes) this time.
    recorded_at: datetime


def _encode(state: str, moment: datetime) -> str:
    # Whole microseconds, exactly, so a repeat rebuilds the first event byte for byte.
    return f"{state}:{(moment - _EPOCH) // _MICROSECOND}"


def _decode(value: str) -> tuple[str, datetime] | None:
    state, _, micros = value.partition(":")
    if state not in {_PENDING, _CONFIRMED} or not micros.isdigit():
        return None
    return state, _EPOCH + int(micros) * _MICROSECOND


class CheckinMarks:
    def __init__(self, client: redis.Redis, prefix: str) -> None:
        self._client = client
        self._prefix = prefix
        self._release = client.register_script(_RELEASE_SCRIPT)

    def key(self, session_id: uuid.UUID, pseudonym: str) -> str:
        return f"{self._prefix}checked:{session_id}:{pseudonym}"

    def claim(self, session_id: uuid.UUID, pseudonym: str, recorded_at: datetime, ttl_seconds: int) -> Mark:
        """Sets a pending mark unless one exists; returns what is there now."""
        key = self.key(session_id, pseudonym)
        try:
            if self._client.set(key, _encode(_PENDING, recorded_at), nx=True, ex=ttl_seconds):
                return Mark(MarkState.CLAIMED, recorded_at)
            raw = self._client.get(key)
        except redis.RedisError as exc:
            raise MarksUnavailable(type(exc).__name__) from exc
        decoded = _decode(raw.decode() if isinstance(raw, bytes) else str(raw or ""))
        if decoded is None:
            # Expired between SET and GET, or unreadable: treat as ours to (re)publish, which is always safe.
            return Mark(MarkState.PENDING, recorded_at)
        state, first_recorded_at = decoded
        return Mark(MarkState.CONFIRMED if state == _CONFIRMED else MarkState.PENDING, first_recorded_at)

    def confirm(self, session_id: uuid.UUID, pseudonym: str, recorded_at: datetime) -> None:
        """Marks the check-in as confirmed, keeping the mark's expiry; does nothing if the mark has gone."""
        try:
            self._client.set(self.key(session_id, pseudonym), _encode(_CONFIRMED, recorded_at), xx=True, keepttl=True)
        except redis.RedisError as exc:
            raise MarksUnavailable(type(exc).__name__) from exc

    def release(self, session_id: uuid.UUID, pseudonym: str, recorded_at: datetime) -> None:
        """Removes this request's pending mark after a failed publish, so the student can simply try again."""
        try:
            self._release(keys=[self.key(session_id, pseudonym)], args=[_encode(_PENDING, recorded_at)])
        except redis.RedisError as exc:
            raise MarksUnavailable(type(exc).__name__) from exc
