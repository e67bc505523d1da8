"""Recording a student's check-in: window, network, code and guess limit, then a confirmed AttendanceRecorded event.

A check-in counts only once the broker has confirmed its event. Redis marks make a repeat cheap but are never
needed for correctness: without Redis every check-in is still published, with an event id derived from (session,
pseudonym), and downstream applies it once.
"""

from __future__ import annotations

import enum
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from prometheus_client import Counter

from tend_checkin import codes, events
from tend_checkin.checkin_marks import CheckinMarks, Mark, MarkState, MarksUnavailable
from tend_checkin.fallback_counts import FallbackWrongCodes
from tend_checkin.networks import IPAddress, allowed_from
from tend_checkin.sessions import TeachingSession, WindowState, window_state
from tend_common.messaging.envelope import envelope
from tend_common.messaging.publisher import EventPublisher, PublishError

log = logging.getLogger(__name__)

# A mark is only useful while check-in is open; a little longer covers clock differences between processes.
_MARK_SLACK = timedelta(minutes=10)
_MIN_MARK_SECONDS = 60
# After Redis fails, check-ins skip it for this long: a Redis that hangs would otherwise add its timeout to every
# check-in, and log a warning for each.
_MARKS_PAUSE_SECONDS = 5.0

CHECKINS = Counter("tend_checkin_checkins", "Check-in attempts by outcome", ["outcome"])


class CheckinStatus(enum.Enum):
    RECORDED = "recorded"
    ALREADY_RECORDED = "already_recorded"
    NOT_YET_OPEN = "not_yet_open"
    CLOSED = "closed"
    WRONG_CODE = "wrong_code"
    # Too many wrong codes for this session: refused whatever the code.
    LOCKED_OUT = "locked_out"
    # The code of the class before this one in the same room (a back-to-back mix-up).
    PREVIOUS_CLASS_CODE = "previous_class_code"
    # The session accepts check-ins from campus networks only, and this one came from elsewhere.
    OFF_NETWORK = "off_network"
    # The broker did not confirm the event: nothing was recorded and the student should try again.
    NOT_RECORDED = "not_recorded"


@dataclass(frozen=True)
class CheckinResult:
    status: CheckinStatus
    # When the (first) check-in was recorded, for RECORDED and ALREADY_RECORDED.
    recorded_at: datetime | None = None
    # Wrong codes the student may still enter, for WRONG_CODE.
    attempts_left: int | None = None


@dataclass(frozen=True)
class CodePolicy:
    """How codes are checked, per institution (settings)."""

    step_seconds: int
    digits: int
    previous_steps: int = 1
    max_wrong_codes: int = 5


# The class held in the same room just before a session, if any (cached by the caller).
PreviousClassFinder = Callable[[TeachingSession], TeachingSession | None]


def _no_previous_class(_session: TeachingSession) -> TeachingSession | None:
    return None


class CheckinRecorder:
    def __init__(
        self,
        marks: CheckinMarks,
        publisher: EventPublisher,
        policy: CodePolicy,
        previous_class: PreviousClassFinder = _no_previous_class,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._marks = marks
        self._publisher = publisher
        self._policy = policy
        self._previous_class = previous_class
        self._monotonic = monotonic
        self._fallback = FallbackWrongCodes(monotonic=monotonic)
        self._marks_paused_until = float("-inf")

    def record(
        self,
        session: TeachingSession,
        pseudonym: str,
        code: str,
        now: datetime,
        client_address: IPAddress | None = None,
    ) -> CheckinResult:
        result = self._record(session, pseudonym, code, now, client_address)
        CHECKINS.labels(result.status.value).inc()
        return result

    def _record(
        self, session: TeachingSession, pseudonym: str, code: str, now: datetime, client_address: IPAddress | None
    ) -> CheckinResult:
        state = window_state(session, now)
        if state is WindowState.NOT_YET_OPEN:
            return CheckinResult(CheckinStatus.NOT_YET_OPEN)
        if state is WindowState.CLOSED:
            return CheckinResult(CheckinStatus.CLOSED)
        if not allowed_from(client_address, session.networks):
            return CheckinResult(CheckinStatus.OFF_NETWORK)
        if not self._code_matches(session, code, now):
            return self._wrong_code(session, pseudonym, code, now)

        mark = self._claim(session, pseudonym, now)
        if mark.state is MarkState.LOCKED_OUT:
            return CheckinResult(CheckinStatus.LOCKED_OUT)
        if mark.state is MarkState.CONFIRMED:
            return CheckinResult(CheckinStatus.ALREADY_RECORDED, mark.recorded_at)
        try:
            self._publish(session, pseudonym, mark.recorded_at)
        except PublishError as exc:
            log.warning(
                "check-in not confirmed by the broker",
                extra={"fields": {"session_id": str(session.id), "error": type(exc).__name__}},
            )
            if mark.state is MarkState.CLAIMED:
                self._release(session, pseudonym, mark.recorded_at)
            return CheckinResult(CheckinStatus.NOT_RECORDED)
        if mark.state is MarkState.CLAIMED:
            # The first check-in leaves its mark pending rather than spend a second Redis round trip on every
            # check-in: the rare repeat republishes the same event (one downstream) and then confirms the mark.
            return CheckinResult(CheckinStatus.RECORDED, mark.recorded_at)
        self._confirm(session, pseudonym, mark.recorded_at)
        return CheckinResult(CheckinStatus.ALREADY_RECORDED, mark.recorded_at)

    def _code_matches(self, session: TeachingSession, code: str, now: datetime) -> bool:
        policy = self._policy
        return codes.verify_code(
            session.code_secret, code, now, policy.step_seconds, policy.digits, policy.previous_steps
        )

    def _wrong_code(self, session: TeachingSession, pseudonym: str, code: str, now: datetime) -> CheckinResult:
        # The right code of the class before in this room is no guess at this session's code: name the mix-up,
        # and do not count it against the student.
        previous = self._previous_class(session)
        if previous is not None and self._code_matches(previous, code, now):
            return CheckinResult(CheckinStatus.PREVIOUS_CLASS_CODE)
        wrong = self._count_wrong_code(session, pseudonym, now)
        limit = self._policy.max_wrong_codes
        if wrong > limit:
            return CheckinResult(CheckinStatus.LOCKED_OUT)
        return CheckinResult(CheckinStatus.WRONG_CODE, attempts_left=limit - wrong)

    def _ttl_seconds(self, session: TeachingSession, now: datetime) -> int:
        return max(_MIN_MARK_SECONDS, math.ceil((session.checkin_closes_at + _MARK_SLACK - now).total_seconds()))

    def _count_wrong_code(self, session: TeachingSession, pseudonym: str, now: datetime) -> int:
        ttl = self._ttl_seconds(session, now)
        if not self._marks_paused():
            try:
                return self._marks.count_wrong_code(session.id, pseudonym, ttl)
            except MarksUnavailable as exc:
                self._pause_marks(session, exc)
        return self._fallback.add(session.id, pseudonym, ttl)

    def _publish(self, session: TeachingSession, pseudonym: str, recorded_at: datetime) -> None:
        event = events.attendance_recorded(session, pseudonym, recorded_at)
        self._publisher.publish(envelope(event, events.ATTENDANCE_RECORDED))

    def _claim(self, session: TeachingSession, pseudonym: str, now: datetime) -> Mark:
        if not self._marks_paused():
            try:
                return self._marks.claim(
                    session.id, pseudonym, now, self._ttl_seconds(session, now), self._policy.max_wrong_codes
                )
            except MarksUnavailable as exc:
                self._pause_marks(session, exc)
        # Without a mark, publish as a first check-in; if it is a repeat, its event id makes it one downstream.
        if self._fallback.count(session.id, pseudonym) >= self._policy.max_wrong_codes:
            return Mark(MarkState.LOCKED_OUT, now)
        return Mark(MarkState.CLAIMED, now)

    def _confirm(self, session: TeachingSession, pseudonym: str, recorded_at: datetime) -> None:
        if self._marks_paused():
            return
        try:
            self._marks.confirm(session.id, pseudonym, recorded_at)
        except MarksUnavailable as exc:
            self._pause_marks(session, exc)

    def _release(self, session: TeachingSession, pseudonym: str, recorded_at: datetime) -> None:
        if self._marks_paused():
            return
        try:
            self._marks.release(session.id, pseudonym, recorded_at)
        except MarksUnavailable as exc:
            # The pending mark expires on its own; until then a retry republishes, which is safe.
            self._pause_marks(session, exc)

    def _marks_paused(self) -> bool:
        return self._monotonic() < self._marks_paused_until

    def _pause_marks(self, session: TeachingSession, exc: MarksUnavailable) -> None:
        # Threads racing here may each log once; after that the pause keeps the log quiet.
        self._marks_paused_until = self._monotonic() + _MARKS_PAUSE_SECONDS
        log.warning(
            "redis unavailable; checking in without marks for a while",
            extra={"fields": {"session_id": str(session.id), "error": str(exc), "pause_seconds": _MARKS_PAUSE_SECONDS}},
        )
