"""Recording check-ins: Redis marks (real Redis, this test's own prefix) in front of a publisher.

The publisher here is tend_common's InMemoryPublisher, the in-memory implementation of the same interface; the
real broker path is covered in test_web.py.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
import redis

from tend_checkin import codes, events
from tend_checkin.checkin_marks import CheckinMarks, MarkState
from tend_checkin.recording import CheckinRecorder, CheckinStatus, CodePolicy
from tend_checkin.sessions import TeachingSession, plan_session
from tend_common.messaging.envelope import envelope
from tend_common.messaging.publisher import InMemoryPublisher
from tend_testing.backends import Backends
from tend_testing.processes import free_port

NOW = datetime(2026, 10, 5, 9, 0, tzinfo=UTC)
PSEUDONYM = "psn_recording_test"
POLICY = CodePolicy(step_seconds=15, digits=6)


class Monotonic:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def redis_client(backends: Backends) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(backends.redis_url)
    yield client
    client.close()


def make_session() -> TeachingSession:
    return plan_session("run-1", "LT1", NOW, timedelta(hours=1), timedelta(minutes=10), "staff-1")


def code(session: TeachingSession, at: datetime) -> str:
    return codes.current_code(session.code_secret, at, 15, 6)


def test_first_check_in_leaves_a_pending_mark_with_an_expiry_in_one_round_trip(
    redis_client: redis.Redis, redis_prefix: str
) -> None:
    marks = CheckinMarks(redis_client, redis_prefix)
    publisher = InMemoryPublisher()
    recorder = CheckinRecorder(marks, publisher, POLICY)
    session = make_session()

    result = recorder.record(session, PSEUDONYM, code(session, NOW), NOW)

    assert result.status is CheckinStatus.RECORDED
    assert result.recorded_at == NOW
    assert len(publisher.events) == 1
    assert publisher.events[0].routing_key == events.ATTENDANCE_RECORDED
    key = marks.key(session.id, PSEUDONYM)
    assert redis_client.get(key) is not None
    # Kept until check-in closes (an hour away) plus ten minutes' slack, not for ever.
    assert 3600 < redis_client.ttl(key) <= 4200
    # No second round trip to confirm it: a repeat republishes instead.
    mark = marks.claim(session.id, PSEUDONYM, NOW + timedelta(seconds=5), 60, 5)
    assert mark.state is MarkState.PENDING
    assert mark.recorded_at == NOW


def test_a_repeat_republishes_once_then_is_answered_from_the_confirmed_mark(
    redis_client: redis.Redis, redis_prefix: str
) -> None:
    marks = CheckinMarks(redis_client, redis_prefix)
    publisher = InMemoryPublisher()
    recorder = CheckinRecorder(marks, publisher, POLICY)
    session = make_session()
    later = NOW + timedelta(seconds=20)

    first = recorder.record(session, PSEUDONYM, code(session, NOW), NOW)
    second = recorder.record(session, PSEUDONYM, code(session, later), later)
    third = recorder.record(session, PSEUDONYM, code(session, later), later)

    assert first.status is CheckinStatus.RECORDED
    assert (second.status, second.recorded_at) == (CheckinStatus.ALREADY_RECORDED, NOW)
    assert (third.status, third.recorded_at) == (CheckinStatus.ALREADY_RECORDED, NOW)
    # The first event and its one republication, byte for byte the same; the third answered from Redis alone.
    assert publisher.events == [publisher.events[0]] * 2
    assert marks.claim(session.id, PSEUDONYM, later, 60, 5).state is MarkState.CONFIRMED


def test_repeat_meeting_an_unconfirmed_mark_republishes_the_identical_event(
    redis_client: redis.Redis, redis_prefix: str
) -> None:
    marks = CheckinMarks(redis_client, redis_prefix)
    publisher = InMemoryPublisher()
    recorder = CheckinRecorder(marks, publisher, POLICY)
    session = make_session()
    # A first request has set its mark and is still waiting for the broker's confirm.
    first_at = NOW - timedelta(seconds=3, microseconds=123_457)
    assert marks.claim(session.id, PSEUDONYM, first_at, 600, 5).state is MarkState.CLAIMED

    result = recorder.record(session, PSEUDONYM, code(session, NOW), NOW)

    # Not "already checked in" on the strength of a publish that may still fail: it published the same event.
    assert result.status is CheckinStatus.ALREADY_RECORDED
    assert result.recorded_at == first_at
    [published] = publisher.events
    expected = envelope(events.attendance_recorded(session, PSEUDONYM, first_at), events.ATTENDANCE_RECORDED)
    assert published == expected
    assert marks.claim(session.id, PSEUDONYM, NOW, 60, 5).state is MarkState.CONFIRMED


def test_failed_publish_removes_only_its_own_pending_mark(redis_client: redis.Redis, redis_prefix: str) -> None:
    marks = CheckinMarks(redis_client, redis_prefix)
    publisher = InMemoryPublisher()
    publisher.fail_with = ConnectionError("broker gone")
    recorder = CheckinRecorder(marks, publisher, POLICY)
    session = make_session()

    result = recorder.record(session, PSEUDONYM, code(session, NOW), NOW)

    assert result.status is CheckinStatus.NOT_RECORDED
    assert redis_client.get(marks.key(session.id, PSEUDONYM)) is None

    # A mark another request has since confirmed is left alone.
    marks.claim(session.id, PSEUDONYM, NOW, 600, 5)
    marks.confirm(session.id, PSEUDONYM, NOW)
    marks.release(session.id, PSEUDONYM, NOW)
    assert marks.claim(session.id, PSEUDONYM, NOW, 60, 5).state is MarkState.CONFIRMED


def test_without_redis_check_ins_are_published_and_redis_is_skipped_for_a_while(
    caplog: pytest.LogCaptureFixture,
) -> None:
    dead = redis.Redis.from_url(f"redis://127.0.0.1:{free_port()}/0", socket_connect_timeout=0.5)
    publisher = InMemoryPublisher()
    monotonic = Monotonic()
    recorder = CheckinRecorder(CheckinMarks(dead, "x:"), publisher, POLICY, monotonic=monotonic)
    session = make_session()
    caplog.set_level(logging.WARNING, logger="tend_checkin.recording")

    first = recorder.record(session, PSEUDONYM, code(session, NOW), NOW)
    repeat = recorder.record(session, PSEUDONYM, code(session, NOW), NOW)

    assert first.status is CheckinStatus.RECORDED
    assert repeat.status is CheckinStatus.RECORDED
    # Both published, with one event id: downstream applies it once.
    assert [event.event_id for event in publisher.events] == [publisher.events[0].event_id] * 2
    assert len(caplog.records) == 1

    monotonic.now += 6
    recorder.record(session, PSEUDONYM, code(session, NOW), NOW)
    assert len(caplog.records) == 2
    dead.close()


def test_window_and_code_are_checked_before_anything_is_marked(redis_client: redis.Redis, redis_prefix: str) -> None:
    marks = CheckinMarks(redis_client, redis_prefix)
    publisher = InMemoryPublisher()
    recorder = CheckinRecorder(marks, publisher, POLICY)
    session = make_session()
    too_early = session.checkin_opens_at - timedelta(seconds=1)

    assert recorder.record(session, PSEUDONYM, code(session, too_early), too_early).status is (
        CheckinStatus.NOT_YET_OPEN
    )
    closed = session.checkin_closes_at
    assert recorder.record(session, PSEUDONYM, code(session, closed), closed).status is CheckinStatus.CLOSED
    assert publisher.events == []
    assert list(redis_client.scan_iter(match=f"{redis_prefix}*")) == []
    # A wrong code leaves only its count, never a check-in mark.
    wrong = f"{(int(code(session, NOW)) + 1) % 1_000_000:06d}"
    assert recorder.record(session, PSEUDONYM, wrong, NOW).status is CheckinStatus.WRONG_CODE
    assert publisher.events == []
    assert list(redis_client.scan_iter(match=f"{redis_prefix}*")) == [
        marks.wrong_codes_key(session.id, PSEUDONYM).encode()
    ]


def test_claims_survive_flushed_scripts_and_a_closed_connection(redis_client: redis.Redis, redis_prefix: str) -> None:
    marks = CheckinMarks(redis_client, redis_prefix)
    session = make_session()
    assert marks.claim(session.id, "psn_a", NOW, 60, 5).state is MarkState.CLAIMED

    # As after a Redis restart, the script is not cached under its hash: it is sent itself. (Set on this instance
    # rather than SCRIPT FLUSH, which would flush every other test's scripts on the shared Redis too.)
    marks._claim_sha = "0" * 40
    assert marks.claim(session.id, "psn_b", NOW, 60, 5).state is MarkState.CLAIMED
    assert marks.claim(session.id, "psn_b", NOW, 60, 5).state is MarkState.PENDING

    # The thread's own connection reconnects on its next use.
    marks.close()
    assert marks.claim(session.id, "psn_c", NOW, 60, 5).state is MarkState.CLAIMED
    marks.close()
