"""The CheckinService gRPC API, for staff actions made through the portal.

Each call reads: authenticate the assertion, validate the request, ask identity whether the person may act on the
module run, then one domain function.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import NoReturn

import grpc
from psycopg_pool import ConnectionPool
from tend.checkin.v1 import checkin_pb2, checkin_pb2_grpc

from tend_checkin import codes, session_store
from tend_checkin.corrections import CORRECT_ACTION, BatchKeyReused, CorrectionBatch, record_corrections
from tend_checkin.grpc_requests import import_options, parse_timetable, validate_corrections
from tend_checkin.networks import normalise_networks
from tend_checkin.opening import OPEN_PURPOSE, SessionRequest, open_session
from tend_checkin.sessions import TeachingSession
from tend_checkin.settings import Settings
from tend_checkin.timetable import TimetableRejected
from tend_checkin.timetable_import import IMPORT_PURPOSE, import_timetable
from tend_common.identity_access import AccessChecker, ActorRefused, verify_actor
from tend_common.messaging.envelope import timestamp
from tend_common.tokens import TokenVerifier

log = logging.getLogger(__name__)

SERVICE_NAME = checkin_pb2.DESCRIPTOR.services_by_name["CheckinService"].full_name

OPEN_ACTION = "teaching_session.open"
PRESENT_ACTION = "teaching_session.present"
PRESENT_PURPOSE = "show the check-in code of a teaching session"
# Identity grants "teaching_session.create" to staff who teach or lead a module run.
CREATE_ACTION = "teaching_session.create"
CORRECT_PURPOSE = "correct attendance for a teaching session"
LIST_PURPOSE = "choose a teaching session to correct attendance for"
MODULE_RUN = "module_run"

MAX_ROOM_LENGTH = 100
MAX_MODULE_RUN_ID_LENGTH = 100
DEFAULT_DURATION_MINUTES = 60
MAX_DURATION_MINUTES = 600
# A session is for this academic year; a start further away is a typing error (and would overflow date arithmetic).
MAX_START_DISTANCE = timedelta(days=366)

Clock = Callable[[], datetime]


def _utc_now() -> datetime:
    return datetime.now(UTC)


def _abort(context: grpc.ServicerContext, code: grpc.StatusCode, message: str) -> NoReturn:
    context.abort(code, message)
    raise AssertionError("context.abort returned")  # it raises; this tells the type checker so


def session_message(session: TeachingSession) -> checkin_pb2.TeachingSession:
    return checkin_pb2.TeachingSession(
        session_id=str(session.id),
        module_run_id=session.module_run_id,
        room=session.room,
        starts_at=timestamp(session.starts_at),
        ends_at=timestamp(session.ends_at),
        checkin_opens_at=timestamp(session.checkin_opens_at),
        checkin_closes_at=timestamp(session.checkin_closes_at),
        allowed_networks=list(session.allowed_networks),
        timetable_uid=session.timetable_uid or "",
    )


def validate_open_request(request: checkin_pb2.OpenSessionRequest, now: datetime) -> SessionRequest | str:
    """The validated request, or a message saying what is wrong with it."""
    module_run_id = request.module_run_id.strip()
    room = request.room.strip()
    if not module_run_id:
        return "module_run_id is required"
    if len(module_run_id) > MAX_MODULE_RUN_ID_LENGTH:
        return f"module_run_id must be at most {MAX_MODULE_RUN_ID_LENGTH} characters"
    if not room:
        return "room is required"
    if len(room) > MAX_ROOM_LENGTH:
        return f"room must be at most {MAX_ROOM_LENGTH} characters"
    minutes = request.duration_minutes or DEFAULT_DURATION_MINUTES
    if not 1 <= minutes <= MAX_DURATION_MINUTES:
        return f"duration_minutes must be between 1 and {MAX_DURATION_MINUTES}"
    try:
        starts_at = request.starts_at.ToDatetime(tzinfo=UTC) if request.HasField("starts_at") else now
    except (ValueError, OverflowError):
        return "starts_at is not a valid time"
    if abs(starts_at - now) > MAX_START_DISTANCE:
        return "starts_at must be within a year of now"
    try:
        networks = normalise_networks(request.allowed_networks)
    except ValueError as exc:
        return f"allowed_networks: {exc}"
    return SessionRequest(
        module_run_id=module_run_id,
        room=room,
        starts_at=starts_at,
        duration=timedelta(minutes=minutes),
        allowed_networks=networks,
    )


class CheckinServicer(checkin_pb2_grpc.CheckinServiceServicer):
    def __init__(
        self,
        pool: ConnectionPool,
        verifier: TokenVerifier,
        access: AccessChecker,
        settings: Settings,
        clock: Clock = _utc_now,
    ) -> None:
        self._pool = pool
        self._verifier = verifier
        self._access = access
        self._settings = settings
        self._clock = clock

    def OpenSession(
        self, request: checkin_pb2.OpenSessionRequest, context: grpc.ServicerContext
    ) -> checkin_pb2.OpenSessionResponse:
        actor = self._authenticate(request.actor_assertion, context)
        now = self._clock()
        valid = validate_open_request(request, now)
        if isinstance(valid, str):
            _abort(context, grpc.StatusCode.INVALID_ARGUMENT, valid)
        self._authorise(request.actor_assertion, OPEN_ACTION, valid.module_run_id, OPEN_PURPOSE, context)
        opens_before = timedelta(minutes=self._settings.checkin_opens_minutes_before)
        session = open_session(self._pool, valid, actor, opens_before, now)
        log.info("teaching session opened", extra={"fields": {"session_id": str(session.id)}})
        return checkin_pb2.OpenSessionResponse(session=session_message(session))

    def GetPresenterCode(
        self, request: checkin_pb2.GetPresenterCodeRequest, context: grpc.ServicerContext
    ) -> checkin_pb2.GetPresenterCodeResponse:
        self._authenticate(request.actor_assertion, context)
        try:
            session_id = uuid.UUID(request.session_id)
        except ValueError:
            _abort(context, grpc.StatusCode.INVALID_ARGUMENT, "session_id must be a UUID")
        with self._pool.connection() as conn:
            session = session_store.find_session(conn, session_id)
        if session is None:
            _abort(context, grpc.StatusCode.NOT_FOUND, "no such teaching session")
        self._authorise(request.actor_assertion, PRESENT_ACTION, session.module_run_id, PRESENT_PURPOSE, context)
        now = self._clock()
        step_seconds = self._settings.code_step_seconds
        code = codes.current_code(session.code_secret, now, step_seconds, self._settings.code_digits)
        return checkin_pb2.GetPresenterCodeResponse(
            code=code,
            checkin_url=f"{self._settings.public_base_url}/c/{session.id}?code={code}",
            rotates_at=timestamp(codes.rotates_at(now, step_seconds)),
            step_seconds=step_seconds,
            session=session_message(session),
        )

    def ImportTimetable(
        self, request: checkin_pb2.ImportTimetableRequest, context: grpc.ServicerContext
    ) -> checkin_pb2.ImportTimetableResponse:
        actor = self._authenticate(request.actor_assertion, context)
        now = self._clock()
        options = import_options(request, self._settings.display_timezone)
        if isinstance(options, str):
            _abort(context, grpc.StatusCode.INVALID_ARGUMENT, options)
        try:
            parsed = parse_timetable(request, options, now)
        except TimetableRejected as exc:
            _abort(context, grpc.StatusCode.INVALID_ARGUMENT, f"the timetable was not imported: {exc}")
        if isinstance(parsed, str):
            _abort(context, grpc.StatusCode.INVALID_ARGUMENT, parsed)
        for module_run_id in dict.fromkeys(entry.module_run_id for entry in parsed.entries):
            self._authorise(request.actor_assertion, CREATE_ACTION, module_run_id, IMPORT_PURPOSE, context)
        opens_before = timedelta(minutes=self._settings.checkin_opens_minutes_before)
        try:
            result = import_timetable(self._pool, parsed, actor, opens_before, now)
        except TimetableRejected as exc:
            _abort(context, grpc.StatusCode.INVALID_ARGUMENT, f"the timetable was not imported: {exc}")
        log.info(
            "timetable imported",
            extra={"fields": {"created": result.created, "updated": result.updated, "unchanged": result.unchanged}},
        )
        return checkin_pb2.ImportTimetableResponse(
            created=result.created,
            updated=result.updated,
            unchanged=result.unchanged,
            skipped=result.skipped,
            sessions=[session_message(session) for session in result.sessions],
        )

    def ListSessions(
        self, request: checkin_pb2.ListSessionsRequest, context: grpc.ServicerContext
    ) -> checkin_pb2.ListSessionsResponse:
        self._authenticate(request.actor_assertion, context)
        module_run_id = request.module_run_id.strip()
        if not module_run_id or len(module_run_id) > MAX_MODULE_RUN_ID_LENGTH:
            _abort(context, grpc.StatusCode.INVALID_ARGUMENT, "module_run_id is required")
        self._authorise(request.actor_assertion, CORRECT_ACTION, module_run_id, LIST_PURPOSE, context)
        with self._pool.connection() as conn:
            sessions = session_store.list_sessions(conn, module_run_id)
        return checkin_pb2.ListSessionsResponse(sessions=[session_message(session) for session in sessions])

    def RecordAttendanceCorrections(
        self, request: checkin_pb2.RecordAttendanceCorrectionsRequest, context: grpc.ServicerContext
    ) -> checkin_pb2.RecordAttendanceCorrectionsResponse:
        actor = self._authenticate(request.actor_assertion, context)
        valid = validate_corrections(request)
        if isinstance(valid, str):
            _abort(context, grpc.StatusCode.INVALID_ARGUMENT, valid)
        with self._pool.connection() as conn:
            session = session_store.find_session(conn, valid.session_id)
        if session is None:
            _abort(context, grpc.StatusCode.NOT_FOUND, "no such teaching session")
        self._authorise(request.actor_assertion, CORRECT_ACTION, session.module_run_id, CORRECT_PURPOSE, context)
        batch = CorrectionBatch(valid.batch_id, session, valid.corrections, valid.reason)
        try:
            outcome = record_corrections(self._pool, batch, actor, self._clock())
        except BatchKeyReused:
            _abort(context, grpc.StatusCode.INVALID_ARGUMENT, "idempotency_key was used for another request")
        log.info(
            "attendance corrected",
            extra={
                "fields": {"session_id": str(session.id), "entries": outcome.recorded, "replayed": outcome.replayed}
            },
        )
        return checkin_pb2.RecordAttendanceCorrectionsResponse(recorded=outcome.recorded, replayed=outcome.replayed)

    def _authenticate(self, assertion: str, context: grpc.ServicerContext) -> str:
        """The acting person's id from a valid assertion; UNAUTHENTICATED otherwise."""
        try:
            return verify_actor(self._verifier, assertion).person_id
        except ActorRefused as refused:
            _abort(context, refused.code, refused.details)

    def _authorise(
        self, assertion: str, action: str, module_run_id: str, purpose: str, context: grpc.ServicerContext
    ) -> None:
        try:
            decision = self._access.check(assertion, action, MODULE_RUN, module_run_id, purpose)
        except grpc.RpcError:
            _abort(context, grpc.StatusCode.UNAVAILABLE, "identity is unavailable; try again")
        if not decision.allowed:
            _abort(context, grpc.StatusCode.PERMISSION_DENIED, decision.reason or "not allowed")
