"""Short-lived marks in Redis that a student has checked in to a session, so a repeat is answered without
publishing again.

A mark is a speed-up, never the record: the record is the confirmed event, and downstream de-duplicates by event
id. A mark is set "pending" (by the claim script, before publishing) and stays so after the first check-in's event
is confirmed, which saves a second round trip on every check-in. A repeat that finds a pending mark publishes the
very same event again rather than claiming success for a publish that may still fail (or did), and once the broker
confirmed it, marks it "confirmed", so later repeats are answered from Redis alone. Claiming also checks the
student's wrong-code count for the session in the same round trip, so a locked-out student cannot claim. Every Redis
failure surfaces as MarksUnavailable so the caller can carry on without marks.
"""

from __future__ import annotations

import enum
import hashlib
import threading
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import redis
from redis.connection import AbstractConnection
from redis.exceptions import NoScriptError

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)
_PENDING = "p"
_CONFIRMED = "c"

# An existing mark wins (a repeat returns the first result); otherwise a student with too many wrong codes is locked
# out; otherwise the pending mark is set. Returns {outcome, existing value}: 0 claimed, 1 existing, 2 locked out.
_CLAIM_SCRIPT = """
local existing = redis.call('GET', KEYS[1])
if existing then
    return {1, existing}
end
local wrong = tonumber(redis.call('GET', KEYS[2]) or '0')
if wrong >= tonumber(ARGV[3]) then
    return {2, ''}
end
redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[2])
return {0, ''}
"""

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
    # An earlier request set the mark; its event may or may not be confirmed yet (a first check-in does not say).
    PENDING = "pending"
    # A repeat republished the event and the broker confirmed it.
    CONFIRMED = "confirmed"
    # No mark, and the student entered too many wrong codes for this session: nothing was set.
    LOCKED_OUT = "locked_out"


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


def student_tag(session_id: uuid.UUID, pseudonym: str) -> str:
    """The part of every key about one student and session, as a Redis Cluster hash tag so a script may touch all
    of that student's keys for the session."""
    return f"{{{session_id}:{pseudonym}}}"


class CheckinMarks:
    """Thread-safe. The claim, once per check-in, goes over a connection of the calling thread's own: the client's
    pool checks a connection out and back in, and checks its health, on every command, which cost about a third of
    the claim's CPU. Call `close` when done."""

    def __init__(self, client: redis.Redis, prefix: str) -> None:
        self._client = client
        self._prefix = prefix
        self._claim_sha = hashlib.sha1(_CLAIM_SCRIPT.encode(), usedforsecurity=False).hexdigest()
        self._release = client.register_script(_RELEASE_SCRIPT)
        self._local = threading.local()
        self._connections: list[AbstractConnection] = []
        self._connections_lock = threading.Lock()

    def key(self, session_id: uuid.UUID, pseudonym: str) -> str:
        return f"{self._prefix}checked:{student_tag(session_id, pseudonym)}"

    def wrong_codes_key(self, session_id: uuid.UUID, pseudonym: str) -> str:
        return f"{self._prefix}wrong:{student_tag(session_id, pseudonym)}"

    def claim(
        self, session_id: uuid.UUID, pseudonym: str, recorded_at: datetime, ttl_seconds: int, max_wrong_codes: int
    ) -> Mark:
        """Sets a pending mark unless one exists or the student is locked out; returns what is there now."""
        keys = [self.key(session_id, pseudonym), self.wrong_codes_key(session_id, pseudonym)]
        args = (_encode(_PENDING, recorded_at), ttl_seconds, max_wrong_codes)
        try:
            outcome, raw = self._run_claim(keys, args)
        except redis.RedisError as exc:
            raise MarksUnavailable(type(exc).__name__) from exc
        if int(outcome) == 0:
            return Mark(MarkState.CLAIMED, recorded_at)
        if int(outcome) == 2:
            return Mark(MarkState.LOCKED_OUT, recorded_at)
        decoded = _decode(raw.decode() if isinstance(raw, bytes) else str(raw or ""))
        if decoded is None:
            # Unreadable: treat as ours to (re)publish, which is always safe.
            return Mark(MarkState.PENDING, recorded_at)
        state, first_recorded_at = decoded
        return Mark(MarkState.CONFIRMED if state == _CONFIRMED else MarkState.PENDING, first_recorded_at)

    def count_wrong_code(self, session_id: uuid.UUID, pseudonym: str, ttl_seconds: int) -> int:
        """Counts one wrong code; returns the student's wrong codes for the session so far, this one included."""
        key = self.wrong_codes_key(session_id, pseudonym)
        try:
            pipeline = self._client.pipeline(transaction=True)
            pipeline.incr(key)
            pipeline.expire(key, ttl_seconds)
            count, _ = pipeline.execute()
        except redis.RedisError as exc:
            raise MarksUnavailable(type(exc).__name__) from exc
        return int(count)

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

    def close(self) -> None:
        """Closes the threads' own connections (the client's pool is the client owner's to close)."""
        with self._connections_lock:
            connections, self._connections = self._connections, []
        for connection in connections:
            connection.disconnect()  # type: ignore[no-untyped-call]

    def _run_claim(self, keys: list[str], args: tuple[str, int, int]) -> Any:
        connection = self._thread_connection()
        try:
            try:
                connection.send_command("EVALSHA", self._claim_sha, len(keys), *keys, *args)  # type: ignore[no-untyped-call]
                return connection.read_response()
            except NoScriptError:
                # Redis restarted, or its scripts were flushed: send the script itself, which also caches it again.
                connection.send_command("EVAL", _CLAIM_SCRIPT, len(keys), *keys, *args)  # type: ignore[no-untyped-call]
                return connection.read_response()
        except redis.ResponseError:
            raise
        except redis.RedisError:
            # A reply may still be on its way: never read it as the answer to the next command.
            connection.disconnect()  # type: ignore[no-untyped-call]
            raise

    def _thread_connection(self) -> AbstractConnection:
        connection: AbstractConnection | None = getattr(self._local, "connection", None)
        if connection is None:
            # Connects on first use, and again after an error disconnected it.
            pool = self._client.connection_pool
            connection = pool.connection_class(**pool.connection_kwargs)
            self._local.connection = connection
            with self._connections_lock:
                self._connections.append(connection)
        return connection
