"""The IndicatorsService gRPC API, for the portal.

Each call reads: authenticate the assertion, validate the request, ask identity which students the person may see
for the purpose, build the answer, record the read in the audit outbox (committed before the answer is returned; if
it cannot be, the read fails), then answer. A refusal is audited too.

GetCase reads like ListCases for one case; a case that does not exist and one that is not the person's get the same
NOT_FOUND (each refusal audited), so case ids cannot be probed.

RecordCaseAction reads: validate the request, authenticate the assertion, ask identity whether the person may see
the case's student individually for engagement support (the same question as for reading their case; refusals are
audited), then record the action, its event and its audit record in one transaction, and answer with the case.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Sequence
from datetime import UTC, date, datetime
from typing import NoReturn

import grpc
from psycopg_pool import ConnectionPool
from tend.indicators.v1 import indicators_pb2, indicators_pb2_grpc

from tend_common.identity_access import Actor, ActorRefused, verify_actor
from tend_common.messaging.envelope import OutgoingEvent
from tend_common.messaging.outbox import add_to_outbox
from tend_common.tokens import TokenVerifier
from tend_indicators import answers, case_actions, events
from tend_indicators.access import Detail, Purpose, Visibility, Visible
from tend_indicators.ingest.fields import plain_id
from tend_indicators.recompute import RecomputeOptions
from tend_indicators.rules_config import RulesConfig

log = logging.getLogger(__name__)

SERVICE_NAME = indicators_pb2.DESCRIPTOR.services_by_name["IndicatorsService"].full_name

CASES_ACTION = "indicators.case.view"
SUMMARY_ACTION = "indicators.engagement_summary.view"
COHORT_ACTION = "indicators.cohort_patterns.view"
_SUMMARY_PURPOSES = {
    indicators_pb2.SUMMARY_PURPOSE_ENGAGEMENT_SUPPORT: Purpose.ENGAGEMENT_SUPPORT,
    indicators_pb2.SUMMARY_PURPOSE_VISA_COMPLIANCE: Purpose.VISA_COMPLIANCE,
}

_ACTION_KINDS = {
    indicators_pb2.CASE_ACTION_KIND_NOTE: case_actions.ActionKind.NOTE,
    indicators_pb2.CASE_ACTION_KIND_CONTACTED: case_actions.ActionKind.CONTACTED,
    indicators_pb2.CASE_ACTION_KIND_REFERRED: case_actions.ActionKind.REFERRED,
    indicators_pb2.CASE_ACTION_KIND_CLOSE: case_actions.ActionKind.CLOSE,
}
STAFF = "staff"

Clock = Callable[[], datetime]


def _uuid(value: str) -> uuid.UUID | None:
    try:
        return uuid.UUID(value)
    except ValueError:
        return None


def _utc_now() -> datetime:
    return datetime.now(UTC)


def _abort(context: grpc.ServicerContext, code: grpc.StatusCode, message: str) -> NoReturn:
    context.abort(code, message)
    raise AssertionError("context.abort returned")  # it raises; this tells the type checker so


class AuditUnavailable(Exception):
    """The audit record could not be committed, so the read must fail."""


class IndicatorsServicer(indicators_pb2_grpc.IndicatorsServiceServicer):
    def __init__(
        self,
        pool: ConnectionPool,
        verifier: TokenVerifier,
        visibility: Visibility,
        config: RulesConfig,
        options: RecomputeOptions,
        clock: Clock = _utc_now,
    ) -> None:
        self._pool = pool
        self._verifier = verifier
        self._visibility = visibility
        self._config = config
        self._options = options
        self._clock = clock

    def ListCases(
        self, request: indicators_pb2.ListCasesRequest, context: grpc.ServicerContext
    ) -> indicators_pb2.ListCasesResponse:
        actor = self._authenticate(request.actor_assertion, context)
        visible = self._visible(request.actor_assertion, Purpose.ENGAGEMENT_SUPPORT, "", context)
        with self._pool.connection() as conn:
            cases = answers.cases_for_staff(conn, actor, visible.pseudonyms, request.include_closed)
        now = self._clock()
        self._audit(
            [
                events.read_audit(
                    actor,
                    CASES_ACTION,
                    "pseudonym",
                    case.student_pseudonym,
                    Purpose.ENGAGEMENT_SUPPORT.words,
                    True,
                    now,
                )
                for case in cases
            ],
            context,
        )
        return indicators_pb2.ListCasesResponse(cases=cases)

    def GetCase(
        self, request: indicators_pb2.GetCaseRequest, context: grpc.ServicerContext
    ) -> indicators_pb2.GetCaseResponse:
        case_id = _uuid(request.case_id)
        if case_id is None:
            _abort(context, grpc.StatusCode.INVALID_ARGUMENT, "case_id must be a case's id (a UUID)")
        actor = self._authenticate(request.actor_assertion, context)
        with self._pool.connection() as conn:
            routing = answers.case_routing(conn, case_id, actor)
        purpose = Purpose.ENGAGEMENT_SUPPORT
        # The rule of ListCases: routed to the person, for a student identity lets them see for engagement support.
        allowed = (
            routing is not None
            and routing[1]
            and routing[0] in self._visible(request.actor_assertion, purpose, "", context).pseudonyms
        )
        now = self._clock()
        if not allowed:
            # Audited like any refusal; an id that names no case is recorded by id, so probing shows up too.
            subject = ("pseudonym", routing[0]) if routing is not None else ("case", str(case_id))
            self._audit([events.read_audit(actor, CASES_ACTION, *subject, purpose.words, False, now)], context)
            # One answer for "no such case" and "not yours", so ids cannot be probed.
            _abort(context, grpc.StatusCode.NOT_FOUND, "There is no such case among the cases routed to you.")
        assert routing is not None
        with self._pool.connection() as conn:
            case = answers.case_by_id(conn, case_id)
        assert case is not None  # cases are never deleted
        self._audit(
            [events.read_audit(actor, CASES_ACTION, "pseudonym", routing[0], purpose.words, True, now)], context
        )
        return indicators_pb2.GetCaseResponse(case=case)

    def GetEngagementSummary(
        self, request: indicators_pb2.GetEngagementSummaryRequest, context: grpc.ServicerContext
    ) -> indicators_pb2.GetEngagementSummaryResponse:
        actor = self._authenticate(request.actor_assertion, context)
        pseudonym = plain_id(request.student_pseudonym)
        if pseudonym is None:
            _abort(context, grpc.StatusCode.INVALID_ARGUMENT, "student_pseudonym is required")
        purpose = _SUMMARY_PURPOSES.get(request.purpose)
        if purpose is None:
            _abort(context, grpc.StatusCode.INVALID_ARGUMENT, "purpose must be engagement support or visa compliance")
        visible = self._visible(request.actor_assertion, purpose, "", context)
        now = self._clock()
        if pseudonym not in visible.pseudonyms:
            self._audit(
                [events.read_audit(actor, SUMMARY_ACTION, "pseudonym", pseudonym, purpose.words, False, now)], context
            )
            _abort(
                context,
                grpc.StatusCode.PERMISSION_DENIED,
                f"You may not see this student's records for {purpose.words}.",
            )
        with self._pool.connection() as conn:
            summary = answers.engagement_summary(
                conn,
                self._config,
                self._options,
                pseudonym,
                self._today(now),
                visa_only=purpose is Purpose.VISA_COMPLIANCE,
            )
        self._audit(
            [events.read_audit(actor, SUMMARY_ACTION, "pseudonym", pseudonym, purpose.words, True, now)], context
        )
        return summary

    def GetCohortPatterns(
        self, request: indicators_pb2.GetCohortPatternsRequest, context: grpc.ServicerContext
    ) -> indicators_pb2.GetCohortPatternsResponse:
        actor = self._authenticate(request.actor_assertion, context)
        module_run_id = plain_id(request.module_run_id)
        if module_run_id is None:
            _abort(context, grpc.StatusCode.INVALID_ARGUMENT, "module_run_id is required")
        visible = self._visible(request.actor_assertion, Purpose.COHORT_PATTERNS, module_run_id, context)
        now = self._clock()
        words = Purpose.COHORT_PATTERNS.words
        if visible.detail is Detail.NONE:
            self._audit(
                [events.read_audit(actor, COHORT_ACTION, "module_run", module_run_id, words, False, now)], context
            )
            _abort(context, grpc.StatusCode.PERMISSION_DENIED, "You may not see this module run's cohort patterns.")
        with self._pool.connection() as conn:
            patterns = answers.cohort_patterns(conn, module_run_id, self._options.minimum_cohort_size)
        self._audit([events.read_audit(actor, COHORT_ACTION, "module_run", module_run_id, words, True, now)], context)
        return patterns

    def RecordCaseAction(
        self, request: indicators_pb2.RecordCaseActionRequest, context: grpc.ServicerContext
    ) -> indicators_pb2.RecordCaseActionResponse:
        case_id = _uuid(request.case_id)
        if case_id is None:
            _abort(context, grpc.StatusCode.INVALID_ARGUMENT, "case_id must be a case's id (a UUID)")
        kind = _ACTION_KINDS.get(request.kind)
        if kind is None:
            _abort(context, grpc.StatusCode.INVALID_ARGUMENT, "kind must be note, contacted, referred or close")
        problem = case_actions.note_problem(request.note)
        if problem is not None:
            _abort(context, grpc.StatusCode.INVALID_ARGUMENT, problem)
        request_id = _uuid(request.request_id)
        if request_id is None:
            _abort(context, grpc.StatusCode.INVALID_ARGUMENT, "request_id must be a UUID chosen by the caller")
        actor = self._authenticate_person(request.actor_assertion, context)
        with self._pool.connection() as conn:
            pseudonym = case_actions.case_student(conn, case_id)
        if pseudonym is None:
            _abort(context, grpc.StatusCode.NOT_FOUND, "There is no such case.")
        purpose = Purpose.ENGAGEMENT_SUPPORT
        now = self._clock()
        # Staff act on cases; a student sees their own engagement but does not act on their own case.
        allowed = (
            actor.kind == STAFF and pseudonym in self._visible(request.actor_assertion, purpose, "", context).pseudonyms
        )
        if not allowed:
            self._audit(
                [
                    events.read_audit(
                        actor.person_id, kind.audit_action, "pseudonym", pseudonym, purpose.words, False, now
                    )
                ],
                context,
            )
            _abort(context, grpc.StatusCode.PERMISSION_DENIED, "You may not act on this student's case.")
        action = case_actions.CaseAction(request_id, case_id, actor.person_id, kind, request.note)
        try:
            with self._pool.connection() as conn, conn.transaction(), conn.cursor() as cur:
                case_actions.record(cur, action, pseudonym, now)
        except case_actions.CaseClosed as exc:
            _abort(context, grpc.StatusCode.FAILED_PRECONDITION, str(exc))
        except case_actions.RequestIdReused as exc:
            _abort(context, grpc.StatusCode.ALREADY_EXISTS, str(exc))
        with self._pool.connection() as conn:
            case = answers.case_by_id(conn, case_id)
        assert case is not None  # cases are never deleted
        return indicators_pb2.RecordCaseActionResponse(case=case)

    def _today(self, now: datetime) -> date:
        return answers.today(self._options.timezone, now)

    def _authenticate(self, assertion: str, context: grpc.ServicerContext) -> str:
        """The acting person's id from a valid assertion; UNAUTHENTICATED otherwise."""
        return self._authenticate_person(assertion, context).person_id

    def _authenticate_person(self, assertion: str, context: grpc.ServicerContext) -> Actor:
        """The acting person (their id, and kind: "staff" or "student") from a valid assertion."""
        try:
            return verify_actor(self._verifier, assertion)
        except ActorRefused as refused:
            _abort(context, refused.code, refused.details)

    def _visible(self, assertion: str, purpose: Purpose, module_run_id: str, context: grpc.ServicerContext) -> Visible:
        try:
            return self._visibility.visible(assertion, purpose, module_run_id)
        except grpc.RpcError as exc:
            code = exc.code()
            if code in (grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.NOT_FOUND):
                # Identity knows no such module run (one only indicators has heard of): nothing may be shown.
                return Visible(Detail.NONE, frozenset(), "unknown to identity")
            if code is grpc.StatusCode.UNAUTHENTICATED:
                _abort(context, grpc.StatusCode.UNAUTHENTICATED, "the actor assertion is not valid")
            _abort(context, grpc.StatusCode.UNAVAILABLE, "identity is unavailable; try again")

    def _audit(self, records: Sequence[OutgoingEvent], context: grpc.ServicerContext) -> None:
        """Commits the audit records before anything is returned; no record, no answer."""
        try:
            with self._pool.connection() as conn, conn.transaction(), conn.cursor() as cur:
                for record in records:
                    add_to_outbox(cur, record)
        except Exception as exc:
            log.exception(
                "audit record not written; the read is refused", extra={"fields": {"error": type(exc).__name__}}
            )
            _abort(
                context, grpc.StatusCode.UNAVAILABLE, "the access could not be audited, so nothing is shown; try again"
            )
