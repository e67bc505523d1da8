"""Recording a student's check-in: window, code, then a confirmed AttendanceRecorded event.

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
    # The broker did not confirm the event: nothing was recorded and the student should try again.
    NOT_RECORDED = "not_recorded"


@dataclass(frozen=True)
class CheckinResult:
    status: CheckinStatus
    # When the (first) check-in was recorded, for RECORDED and ALREADY_RECORDED.
    recorded_at: datetime | None = None


class CheckinRecorder:
    def __init__(
        self,
        marks: CheckinMarks,
        publisher: EventPublisher,
        step_seconds: int,
        digits: int,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._marks = marks
        self._publisher = publisher
        self._step_seconds = step_seconds
        self._digits = digits
        self._monotonic = monotonic
        self._marks_paused_until = float("-inf")

    def record(self, session: TeachingSession, pseudonym: str, code: str, now: datetime) -> CheckinResult:
        result = self._record(session, pseudonym, code, now)
        CHECKINS.labels(result.status.value).inc()
        return result

    def _record(self, session: TeachingSession, pseudonym: str, code: str, now: datetime) -> CheckinResult:
        state = window_state(session, now)
        if state is WindowState.NOT_YET_OPEN:
            return CheckinResult(CheckinStatus.NOT_YET_OPEN)
        if state is WindowState.CLOSED:
            return CheckinResult(CheckinStatus.CLOSED)
        if not codes.verify_code(session.code_secret, code, now, self._step_seconds, self._digits):
            return CheckinResult(CheckinStatus.WRONG_CODE)

        mark = self._claim(session, pseudonym, now)
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
        self._confirm(session, pseudonym, mark.recorded_at)
        status = CheckinStatus.RECORDED if mark.state is MarkState.CLAIMED else CheckinStatus.ALREADY_RECORDED
        return CheckinResult(status, mark.recorded_at)

    def _publish(self, session: TeachingSession, pseudonym: str, recorded_at: datetime) -> None:
        event = events.attendance_recorded(session, pseudonym, recorded_at)
        self._publisher.publish(envelope(event, events.ATTENDANCE_RECORDED))

    def _claim(self, session: TeachingSession, pseudonym: str, now: datetime) -> Mark:
        # Without a mark, publish as a first check-in; if it is a repeat, its event id makes it one downstream.
        unmarked = Mark(MarkState.CLAIMED, now)
        if self._marks_paused():
            return unmarked
        ttl = max(_MIN_MARK_SECONDS, math.ceil((session.checkin_closes_at + _MARK_SLACK - now).total_seconds()))
        try:
            return self._marks.claim(session.id, pseudonym, now, ttl)
        except MarksUnavailable as exc:
            self._pause_marks(session, exc)
            return unmarked

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
