"""The IdentityService gRPC servicer. Each method validates its request, authorises, calls one domain function and
translates the outcome; failures carry fixed messages that never echo what the caller sent.

Handlers take everything about the caller from the request (the person's signed assertion or session token) and
the call's metadata (request id). An interceptor that authenticates the calling service can be added in front of
them without changing them.
"""

from __future__ import annotations

import contextvars
import functools
import logging
import re
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import TypeVar

import grpc
from psycopg_pool import ConnectionPool
from tend.identity.v1 import identity_pb2, identity_pb2_grpc

from tend_common.messaging.envelope import timestamp
from tend_common.messaging.outbox import add_to_outbox
from tend_common.service_auth import calling_service
from tend_identity import (
    access,
    accounts,
    audit_events,
    break_glass,
    checkin_tokens,
    contact_details,
    decisions,
    disclosure,
    modules,
    person_search,
    preferences,
    pseudonym_mapping,
    responsible_staff,
    sessions,
)
from tend_identity.assertions import (
    AssertionForAnotherService,
    InvalidAssertion,
    VerifiedAssertions,
    expected_audience,
    issue_assertion,
)
from tend_identity.audit_writer import AuditNotRecorded, AuditWriter
from tend_identity.facts import CachedFacts
from tend_identity.facts_cache import FactsCache
from tend_identity.grpc_messages import (
    DETAILS,
    IDENTIFIER_KINDS,
    LANDING_PAGES_IN,
    PURPOSES,
    grant_message,
    managed_module_message,
    module_message,
    module_run_message,
    person_message,
    preferences_message,
    school_message,
    student_message,
)
from tend_identity.metrics import ACCESS_DECISIONS, SIGN_INS, TOKENS_ISSUED
from tend_identity.model import Actor, NotFoundError, Person, Refused, Resource
from tend_identity.oidc import OidcRefused, OidcSignIn
from tend_identity.policy import Purpose
from tend_identity.settings import ACADEMIC_YEAR, Settings
from tend_identity.signing import ALGORITHM, Keyring
from tend_identity.store import Connection
from tend_identity.store import people as people_store

log = logging.getLogger(__name__)

SERVICE_NAME: str = identity_pb2.DESCRIPTOR.services_by_name["IdentityService"].full_name

MAX_USERNAME_LENGTH = 150
# Argon2 takes any length, but hashing megabytes on request would be an easy way to burn CPU.
MAX_PASSWORD_LENGTH = 1024
MAX_AUDIENCES = 16
MAX_ASSERTION_LENGTH = 4096
MAX_PURPOSE_LENGTH = 500
MAX_PSEUDONYMS = 1000
MAX_IDENTIFIERS = 10_000
MAX_IDENTIFIER_LENGTH = 320
MAX_TITLE_LENGTH = 200
AUDIENCE = re.compile(r"[a-z][a-z0-9_-]{0,63}")
ACTION = re.compile(r"[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*){0,3}")
RESOURCE_KIND = re.compile(r"[a-z][a-z0-9_]{0,31}")
# Resource ids and request ids are opaque identifiers; this shape keeps free text (and so personal data) out.
IDENTIFIER = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,127}")
PSEUDONYM = re.compile(r"p_[a-z2-7]{1,64}")
MODULE_CODE = re.compile(r"[A-Z0-9][A-Z0-9-]{1,19}")
OIDC_VALUE = re.compile(r"[A-Za-z0-9._~-]{1,512}")


class RpcFailure(Exception):
    """Ends the call with `code` and a fixed, non-identifying message."""

    def __init__(self, code: grpc.StatusCode, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


# The full name of the method being served, for the audit record of a refusal deep in a handler.
_served_method: contextvars.ContextVar[str] = contextvars.ContextVar("served_method", default="")

_Servicer = TypeVar("_Servicer")
_Request = TypeVar("_Request")
_Response = TypeVar("_Response")


def _rpc(
    method: Callable[[_Servicer, _Request, grpc.ServicerContext], _Response],
) -> Callable[[_Servicer, _Request, grpc.ServicerContext], _Response]:
    """Turns RpcFailure into its status, and any other error into INTERNAL with a fixed message: gRPC would
    otherwise send the exception's text, which may quote a value from the database."""

    full_name = f"/{SERVICE_NAME}/{method.__name__}"

    @functools.wraps(method)
    def handle(self: _Servicer, request: _Request, context: grpc.ServicerContext) -> _Response:
        served = _served_method.set(full_name)
        try:
            return method(self, request, context)
        except RpcFailure as failure:
            context.abort(failure.code, failure.message)
        except Exception as exc:
            log.exception("request failed", extra={"fields": {"method": method.__name__, "error": type(exc).__name__}})
            context.abort(grpc.StatusCode.INTERNAL, "internal error")
        finally:
            _served_method.reset(served)
        raise AssertionError("context.abort returned")  # it always raises

    return handle


def _request_id(context: grpc.ServicerContext) -> str:
    for key, value in context.invocation_metadata() or ():
        if key == "x-request-id" and isinstance(value, str) and IDENTIFIER.fullmatch(value):
            return value
    return ""


def _purpose(value: int, required: bool = True) -> Purpose | None:
    purpose: Purpose | None = PURPOSES.get(value)  # type: ignore[call-overload]
    if purpose is None and required:
        raise RpcFailure(grpc.StatusCode.INVALID_ARGUMENT, "a purpose is required")
    return purpose


def _uuid(value: str, what: str) -> uuid.UUID:
    try:
        return uuid.UUID(value)
    except ValueError:
        raise RpcFailure(grpc.StatusCode.INVALID_ARGUMENT, f"{what} must be an id") from None


def _title(value: str) -> str:
    title = value.strip()
    if not title or len(title) > MAX_TITLE_LENGTH or not title.isprintable():
        raise RpcFailure(grpc.StatusCode.INVALID_ARGUMENT, f"a title of 1 to {MAX_TITLE_LENGTH} characters is required")
    return title


class IdentityServicer(identity_pb2_grpc.IdentityServiceServicer):
    def __init__(
        self,
        pool: ConnectionPool,
        keyring: Keyring,
        settings: Settings,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        oidc: OidcSignIn | None = None,
        audit_writer: AuditWriter | None = None,
        facts_cache: FactsCache | None = None,
    ) -> None:
        self._pool = pool
        self._keyring = keyring
        self._settings = settings
        self._clock = clock
        self._assertions = VerifiedAssertions(keyring)
        self._oidc = oidc or OidcSignIn(settings)
        # Started here unless given (the server gives them, to stop them in its own order); close() stops these.
        self._owned: list[AuditWriter | FactsCache] = []
        if audit_writer is None:
            audit_writer = AuditWriter(settings.database_url, settings.audit_wait_seconds).start()
            self._owned.append(audit_writer)
        if facts_cache is None:
            facts_cache = FactsCache(settings.database_url).start()
            self._owned.append(facts_cache)
        self._audit_writer = audit_writer
        self._facts_cache = facts_cache

    def close(self) -> None:
        """Stops the audit writer and the facts cache this servicer started itself."""
        for part in reversed(self._owned):
            part.stop()

    @contextmanager
    def _transaction(self, changes_facts: bool = False) -> Iterator[Connection]:
        """A connection whose transaction commits even when the domain refuses (Refused), so that the refusal's
        audit record is kept; the refusal then ends the call with its plain-language message.

        `changes_facts`: the transaction may change what decisions read (a break-glass grant, a module), so this
        process's facts cache is dropped before the call is answered. Other processes drop theirs on the commit's
        notification; this makes the change visible to the very next decision here without waiting for it."""
        refusal: Refused | None = None
        try:
            with self._pool.connection() as conn:
                try:
                    yield conn
                except Refused as refused:
                    refusal = refused
        finally:
            if changes_facts:
                self._facts_cache.invalidate()
        if isinstance(refusal, NotFoundError):
            raise RpcFailure(grpc.StatusCode.NOT_FOUND, str(refusal))
        if isinstance(refusal, modules.ModuleCodeTaken):
            raise RpcFailure(grpc.StatusCode.ALREADY_EXISTS, str(refusal))
        if refusal is not None:
            raise RpcFailure(grpc.StatusCode.PERMISSION_DENIED, str(refusal))

    # Sign-in and sessions.

    @_rpc
    def SignIn(self, request: identity_pb2.SignInRequest, context: grpc.ServicerContext) -> identity_pb2.SignInResponse:
        if not request.username or not request.password:
            raise RpcFailure(grpc.StatusCode.INVALID_ARGUMENT, "a user name and a password are required")
        if len(request.username) > MAX_USERNAME_LENGTH or len(request.password) > MAX_PASSWORD_LENGTH:
            SIGN_INS.labels("refused").inc()
            raise RpcFailure(grpc.StatusCode.UNAUTHENTICATED, "sign-in failed")
        try:
            signed_in = accounts.sign_in(
                self._pool,
                request.username,
                request.password,
                timedelta(seconds=self._settings.session_ttl_seconds),
                self._clock(),
            )
        except accounts.SignInRefused:
            SIGN_INS.labels("refused").inc()
            raise RpcFailure(grpc.StatusCode.UNAUTHENTICATED, "sign-in failed") from None
        SIGN_INS.labels("signed_in").inc()
        return identity_pb2.SignInResponse(
            session_token=signed_in.token,
            person=person_message(signed_in.person),
            expires_at=timestamp(signed_in.expires_at),
        )

    @_rpc
    def StartOidcSignIn(
        self, request: identity_pb2.StartOidcSignInRequest, context: grpc.ServicerContext
    ) -> identity_pb2.StartOidcSignInResponse:
        if not self._oidc.enabled:
            raise RpcFailure(grpc.StatusCode.FAILED_PRECONDITION, "OpenID Connect sign-in is not configured")
        if request.redirect_uri not in self._settings.oidc_redirect_uris:
            raise RpcFailure(grpc.StatusCode.INVALID_ARGUMENT, "the redirect address is not one identity allows")
        with self._pool.connection() as conn:
            started = self._oidc.start(conn, request.redirect_uri, self._clock())
        return identity_pb2.StartOidcSignInResponse(authorization_url=started.authorization_url, state=started.state)

    @_rpc
    def FinishOidcSignIn(
        self, request: identity_pb2.FinishOidcSignInRequest, context: grpc.ServicerContext
    ) -> identity_pb2.SignInResponse:
        if not self._oidc.enabled:
            raise RpcFailure(grpc.StatusCode.FAILED_PRECONDITION, "OpenID Connect sign-in is not configured")
        if not OIDC_VALUE.fullmatch(request.state) or not OIDC_VALUE.fullmatch(request.code):
            raise RpcFailure(grpc.StatusCode.INVALID_ARGUMENT, "a state and a code are required")
        try:
            signed_in = self._oidc.finish(
                self._pool,
                request.state,
                request.code,
                self._clock(),
                timedelta(seconds=self._settings.session_ttl_seconds),
            )
        except OidcRefused:
            SIGN_INS.labels("refused").inc()
            raise RpcFailure(grpc.StatusCode.UNAUTHENTICATED, "sign-in failed") from None
        SIGN_INS.labels("signed_in").inc()
        return identity_pb2.SignInResponse(
            session_token=signed_in.token,
            person=person_message(signed_in.person),
            expires_at=timestamp(signed_in.expires_at),
        )

    @_rpc
    def GetSession(
        self, request: identity_pb2.GetSessionRequest, context: grpc.ServicerContext
    ) -> identity_pb2.GetSessionResponse:
        audiences = sorted(set(request.audiences))
        if len(audiences) > MAX_AUDIENCES or not all(AUDIENCE.fullmatch(a) for a in audiences):
            raise RpcFailure(grpc.StatusCode.INVALID_ARGUMENT, "audiences must be service names")
        now = self._clock()
        person = self._session_person(request.session_token, now, grpc.StatusCode.NOT_FOUND)
        ttl = timedelta(seconds=self._settings.assertion_ttl_seconds)
        assertions = {audience: issue_assertion(self._keyring, person, audience, ttl, now) for audience in audiences}
        TOKENS_ISSUED.labels("assertion").inc(len(assertions))
        return identity_pb2.GetSessionResponse(person=person_message(person), assertions=assertions)

    @_rpc
    def SignOut(
        self, request: identity_pb2.SignOutRequest, context: grpc.ServicerContext
    ) -> identity_pb2.SignOutResponse:
        with self._pool.connection() as conn:
            sessions.close_session(conn, request.session_token, self._clock())
        return identity_pb2.SignOutResponse()

    @_rpc
    def SignOutEverywhere(
        self, request: identity_pb2.SignOutEverywhereRequest, context: grpc.ServicerContext
    ) -> identity_pb2.SignOutEverywhereResponse:
        with self._pool.connection() as conn:
            revoked = sessions.close_every_session(conn, request.session_token, self._clock())
        if revoked == 0:
            raise RpcFailure(grpc.StatusCode.UNAUTHENTICATED, "no open session")
        return identity_pb2.SignOutEverywhereResponse(revoked=revoked)

    @_rpc
    def GetPreferences(
        self, request: identity_pb2.GetPreferencesRequest, context: grpc.ServicerContext
    ) -> identity_pb2.GetPreferencesResponse:
        person = self._session_person(request.session_token, self._clock())
        with self._pool.connection() as conn:
            stored = preferences.preferences_of(conn, person.id)
        return identity_pb2.GetPreferencesResponse(preferences=preferences_message(stored))

    @_rpc
    def SetPreferences(
        self, request: identity_pb2.SetPreferencesRequest, context: grpc.ServicerContext
    ) -> identity_pb2.SetPreferencesResponse:
        landing = LANDING_PAGES_IN.get(request.preferences.landing_page)
        if landing is None:
            raise RpcFailure(grpc.StatusCode.INVALID_ARGUMENT, "unknown landing page")
        person = self._session_person(request.session_token, self._clock())
        with self._pool.connection() as conn:
            stored = preferences.set_preferences(conn, person.id, preferences.Preferences(landing))
        return identity_pb2.SetPreferencesResponse(preferences=preferences_message(stored))

    # Tokens and keys.

    @_rpc
    def IssueCheckinToken(
        self, request: identity_pb2.IssueCheckinTokenRequest, context: grpc.ServicerContext
    ) -> identity_pb2.IssueCheckinTokenResponse:
        now = self._clock()
        with self._pool.connection() as conn:
            person = sessions.session_person(conn, request.session_token, now)
            if person is None:
                raise RpcFailure(grpc.StatusCode.UNAUTHENTICATED, "no open session")
            try:
                issued = checkin_tokens.issue_checkin_token(
                    conn,
                    self._keyring,
                    person,
                    self._settings.academic_year,
                    timedelta(seconds=self._settings.checkin_token_ttl_seconds),
                    now,
                )
            except checkin_tokens.NotAStudent:
                raise RpcFailure(grpc.StatusCode.PERMISSION_DENIED, "check-in tokens are for students") from None
        TOKENS_ISSUED.labels("checkin").inc()
        return identity_pb2.IssueCheckinTokenResponse(token=issued.token, expires_at=timestamp(issued.expires_at))

    @_rpc
    def GetPublicKeys(
        self, request: identity_pb2.GetPublicKeysRequest, context: grpc.ServicerContext
    ) -> identity_pb2.GetPublicKeysResponse:
        return identity_pb2.GetPublicKeysResponse(
            keys=[
                identity_pb2.PublicKey(key_id=key.kid, algorithm=ALGORITHM, public_key=key.public_key)
                for key in self._keyring.published()
            ]
        )

    # Access decisions and disclosure.

    @_rpc
    def CheckAccess(
        self, request: identity_pb2.CheckAccessRequest, context: grpc.ServicerContext
    ) -> identity_pb2.CheckAccessResponse:
        if not ACTION.fullmatch(request.action):
            raise RpcFailure(grpc.StatusCode.INVALID_ARGUMENT, "an action such as teaching_session.open is required")
        singleton = request.resource.kind in access.SINGLETON_KINDS and request.resource.id in ("", "*")
        if not RESOURCE_KIND.fullmatch(request.resource.kind) or not (
            singleton or IDENTIFIER.fullmatch(request.resource.id)
        ):
            raise RpcFailure(grpc.StatusCode.INVALID_ARGUMENT, "a resource kind and id are required")
        if len(request.purpose) > MAX_PURPOSE_LENGTH:
            raise RpcFailure(grpc.StatusCode.INVALID_ARGUMENT, "the purpose is too long")
        purpose_kind = _purpose(request.data_purpose, required=False)
        actor = self._actor(request.actor_assertion)
        resource = Resource(kind=request.resource.kind, id=request.resource.id)
        try:
            decision = decisions.answer_access_question(
                CachedFacts(self._facts_cache, self._pool, self._clock()),
                self._audit_writer,
                actor,
                request.action,
                resource,
                request.purpose,
                _request_id(context),
                purpose_kind,
            )
        except AuditNotRecorded:
            raise RpcFailure(grpc.StatusCode.UNAVAILABLE, "the decision could not be recorded; ask again") from None
        ACCESS_DECISIONS.labels("allowed" if decision.allowed else "refused", decision.rule).inc()
        return identity_pb2.CheckAccessResponse(allowed=decision.allowed, reason=decision.reason, rule=decision.rule)

    @_rpc
    def ListTeachingModuleRuns(
        self, request: identity_pb2.ListTeachingModuleRunsRequest, context: grpc.ServicerContext
    ) -> identity_pb2.ListTeachingModuleRunsResponse:
        actor = self._actor(request.actor_assertion)
        with self._pool.connection() as conn:
            runs = people_store.teaching_module_runs(conn, actor.person_id)
        return identity_pb2.ListTeachingModuleRunsResponse(module_runs=[module_run_message(run) for run in runs])

    @_rpc
    def ListVisibleStudents(
        self, request: identity_pb2.ListVisibleStudentsRequest, context: grpc.ServicerContext
    ) -> identity_pb2.ListVisibleStudentsResponse:
        purpose = _purpose(request.purpose)
        assert purpose is not None
        module_run_id = _uuid(request.module_run_id, "the module run") if request.module_run_id else None
        if purpose is Purpose.ATTENDANCE_CORRECTION and module_run_id is None:
            raise RpcFailure(grpc.StatusCode.INVALID_ARGUMENT, "attendance correction needs a module run")
        actor = self._actor(request.actor_assertion)
        minimum = self._settings.minimum_cohort_size
        with self._pool.connection() as conn:
            visible = disclosure.list_visible_students(
                conn,
                actor,
                purpose,
                module_run_id,
                self._clock(),
                self._settings.academic_year,
                minimum,
                _request_id(context),
                wrapping=self._keyring.wrapping,
            )
        return identity_pb2.ListVisibleStudentsResponse(
            detail=DETAILS[visible.detail],
            students=[student_message(student) for student in visible.students],
            rule=visible.rule,
            cohort_size=visible.cohort_size,
            suppressed=visible.suppressed,
            minimum_cohort_size=minimum,
        )

    @_rpc
    def ResolvePseudonyms(
        self, request: identity_pb2.ResolvePseudonymsRequest, context: grpc.ServicerContext
    ) -> identity_pb2.ResolvePseudonymsResponse:
        purpose = _purpose(request.purpose)
        assert purpose is not None
        if len(request.pseudonyms) > MAX_PSEUDONYMS:
            raise RpcFailure(grpc.StatusCode.INVALID_ARGUMENT, f"at most {MAX_PSEUDONYMS} pseudonyms at a time")
        if not all(PSEUDONYM.fullmatch(p) for p in request.pseudonyms):
            raise RpcFailure(grpc.StatusCode.INVALID_ARGUMENT, "pseudonyms must look like p_ and base32 letters")
        actor = self._actor(request.actor_assertion)
        with self._pool.connection() as conn:
            shown = disclosure.resolve_pseudonyms(
                conn, actor, list(request.pseudonyms), purpose, self._clock(), _request_id(context)
            )
        return identity_pb2.ResolvePseudonymsResponse(students=[student_message(student) for student in shown])

    @_rpc
    def MapToPseudonyms(
        self, request: identity_pb2.MapToPseudonymsRequest, context: grpc.ServicerContext
    ) -> identity_pb2.MapToPseudonymsResponse:
        kind = IDENTIFIER_KINDS.get(request.kind)
        if kind is None:
            raise RpcFailure(grpc.StatusCode.INVALID_ARGUMENT, "an identifier kind is required")
        if len(request.identifiers) > MAX_IDENTIFIERS:
            raise RpcFailure(grpc.StatusCode.INVALID_ARGUMENT, f"at most {MAX_IDENTIFIERS} identifiers at a time")
        if any(not value or len(value) > MAX_IDENTIFIER_LENGTH for value in request.identifiers):
            raise RpcFailure(grpc.StatusCode.INVALID_ARGUMENT, "identifiers must be non-empty and short")
        year = request.academic_year or self._settings.academic_year
        if not ACADEMIC_YEAR.fullmatch(year):
            raise RpcFailure(grpc.StatusCode.INVALID_ARGUMENT, "the academic year must look like 2026/27")
        with self._pool.connection() as conn:
            mapped = pseudonym_mapping.map_to_pseudonyms(
                conn, self._keyring.wrapping, kind, list(request.identifiers), year
            )
        return identity_pb2.MapToPseudonymsResponse(pseudonyms=mapped)

    @_rpc
    def ListResponsibleStaff(
        self, request: identity_pb2.ListResponsibleStaffRequest, context: grpc.ServicerContext
    ) -> identity_pb2.ListResponsibleStaffResponse:
        if not PSEUDONYM.fullmatch(request.pseudonym):
            raise RpcFailure(grpc.StatusCode.INVALID_ARGUMENT, "a pseudonym is required")
        try:
            with self._pool.connection() as conn:
                routed = responsible_staff.responsible_staff(conn, request.pseudonym)
        except responsible_staff.UnknownPseudonym:
            raise RpcFailure(grpc.StatusCode.NOT_FOUND, "no student has this pseudonym") from None
        return identity_pb2.ListResponsibleStaffResponse(
            staff=[
                identity_pb2.ResponsibleStaff(person_id=str(r.person_id), relationship=r.relationship) for r in routed
            ]
        )

    @_rpc
    def GetContactDetails(
        self, request: identity_pb2.GetContactDetailsRequest, context: grpc.ServicerContext
    ) -> identity_pb2.GetContactDetailsResponse:
        if bool(request.pseudonym) == bool(request.person_id):
            raise RpcFailure(grpc.StatusCode.INVALID_ARGUMENT, "exactly one of a pseudonym and a person id")
        if request.pseudonym and not PSEUDONYM.fullmatch(request.pseudonym):
            raise RpcFailure(grpc.StatusCode.INVALID_ARGUMENT, "a pseudonym looks like p_ and base32 letters")
        if len(request.purpose) > MAX_PURPOSE_LENGTH:
            raise RpcFailure(grpc.StatusCode.INVALID_ARGUMENT, "the purpose is too long")
        person_id = _uuid(request.person_id, "the person") if request.person_id else None
        on_behalf_of = (
            _uuid(request.on_behalf_of_person_id, "the person acted for") if request.on_behalf_of_person_id else None
        )
        with self._transaction() as conn:
            details = contact_details.contact_details(
                conn,
                request.pseudonym or None,
                person_id,
                request.purpose,
                on_behalf_of,
                calling_service(),
                _request_id(context),
            )
        return identity_pb2.GetContactDetailsResponse(preferred_name=details.preferred_name, email=details.email)

    # Break-glass.

    @_rpc
    def RequestBreakGlass(
        self, request: identity_pb2.RequestBreakGlassRequest, context: grpc.ServicerContext
    ) -> identity_pb2.RequestBreakGlassResponse:
        reason = request.reason.strip()
        if not break_glass.MIN_REASON_LENGTH <= len(reason) <= break_glass.MAX_REASON_LENGTH:
            raise RpcFailure(
                grpc.StatusCode.INVALID_ARGUMENT,
                f"a written reason of {break_glass.MIN_REASON_LENGTH} to {break_glass.MAX_REASON_LENGTH} characters"
                " is required",
            )
        if not IDENTIFIER.fullmatch(request.student):
            raise RpcFailure(grpc.StatusCode.INVALID_ARGUMENT, "a student id or pseudonym is required")
        actor = self._actor(request.actor_assertion)
        lifetime = timedelta(minutes=self._settings.break_glass_minutes)
        with self._transaction(changes_facts=True) as conn:
            grant = break_glass.request_break_glass(
                conn, actor, request.student, reason, self._clock(), lifetime, _request_id(context)
            )
        return identity_pb2.RequestBreakGlassResponse(grant=grant_message(grant))

    @_rpc
    def ListBreakGlassGrants(
        self, request: identity_pb2.ListBreakGlassGrantsRequest, context: grpc.ServicerContext
    ) -> identity_pb2.ListBreakGlassGrantsResponse:
        since = request.since.ToDatetime(tzinfo=UTC) if request.HasField("since") else None
        actor = self._actor(request.actor_assertion)
        with self._transaction() as conn:
            grants = break_glass.grants_for_review(conn, actor, since, self._clock(), _request_id(context))
        return identity_pb2.ListBreakGlassGrantsResponse(grants=[grant_message(grant) for grant in grants])

    # Module management.

    @_rpc
    def CreateModule(
        self, request: identity_pb2.CreateModuleRequest, context: grpc.ServicerContext
    ) -> identity_pb2.ModuleResponse:
        school_id = _uuid(request.school_id, "the school")
        if not MODULE_CODE.fullmatch(request.code):
            raise RpcFailure(grpc.StatusCode.INVALID_ARGUMENT, "a module code of capital letters, digits and dashes")
        title = _title(request.title)
        actor = self._actor(request.actor_assertion)
        with self._transaction(changes_facts=True) as conn:
            module = modules.create_module(
                conn, actor, school_id, request.code, title, self._clock(), _request_id(context)
            )
        return identity_pb2.ModuleResponse(module=module_message(module))

    @_rpc
    def UpdateModule(
        self, request: identity_pb2.UpdateModuleRequest, context: grpc.ServicerContext
    ) -> identity_pb2.ModuleResponse:
        module_id = _uuid(request.module_id, "the module")
        title = _title(request.title)
        actor = self._actor(request.actor_assertion)
        with self._transaction(changes_facts=True) as conn:
            module = modules.update_module(conn, actor, module_id, title, self._clock(), _request_id(context))
        return identity_pb2.ModuleResponse(module=module_message(module))

    @_rpc
    def DeleteModule(
        self, request: identity_pb2.ModuleActionRequest, context: grpc.ServicerContext
    ) -> identity_pb2.ModuleResponse:
        module_id = _uuid(request.module_id, "the module")
        actor = self._actor(request.actor_assertion)
        with self._transaction(changes_facts=True) as conn:
            module = modules.delete_module(conn, actor, module_id, self._clock(), _request_id(context))
        return identity_pb2.ModuleResponse(module=module_message(module))

    @_rpc
    def RestoreModule(
        self, request: identity_pb2.ModuleActionRequest, context: grpc.ServicerContext
    ) -> identity_pb2.ModuleResponse:
        module_id = _uuid(request.module_id, "the module")
        actor = self._actor(request.actor_assertion)
        with self._transaction(changes_facts=True) as conn:
            module = modules.restore_module(conn, actor, module_id, self._clock(), _request_id(context))
        return identity_pb2.ModuleResponse(module=module_message(module))

    @_rpc
    def ListModules(
        self, request: identity_pb2.ListModulesRequest, context: grpc.ServicerContext
    ) -> identity_pb2.ListModulesResponse:
        actor = self._actor(request.actor_assertion)
        with self._pool.connection() as conn:
            manageable = modules.manageable_modules(conn, actor)
        return identity_pb2.ListModulesResponse(
            modules=[managed_module_message(managed) for managed in manageable.modules],
            schools_for_new_modules=[school_message(school) for school in manageable.schools_for_new_modules],
        )

    # Finding people for the audit search.

    @_rpc
    def FindPerson(
        self, request: identity_pb2.FindPersonRequest, context: grpc.ServicerContext
    ) -> identity_pb2.FindPersonResponse:
        identifier = request.identifier.strip()
        if not identifier or len(identifier) > MAX_IDENTIFIER_LENGTH or not identifier.isprintable():
            raise RpcFailure(
                grpc.StatusCode.INVALID_ARGUMENT, "a student number, staff number or staff user name is required"
            )
        actor = self._actor(request.actor_assertion)
        with self._transaction() as conn:
            found = person_search.find_person(conn, actor, identifier, self._clock(), _request_id(context))
        return identity_pb2.FindPersonResponse(person_id=str(found.id), display_name=found.display_name)

    # Who is asking.

    def _actor(self, assertion: str) -> Actor:
        """The person the assertion states, if it is valid and was issued for the service presenting it: an
        assertion one service received (indicators, say) is refused from any other (checkin replaying it), and the
        refusal goes on the audit trail."""
        if not assertion or len(assertion) > MAX_ASSERTION_LENGTH:
            raise RpcFailure(grpc.StatusCode.UNAUTHENTICATED, "a valid assertion is required")
        caller = calling_service()
        try:
            return self._assertions.verify(assertion, expected_audience(caller))
        except AssertionForAnotherService as replayed:
            self._record_replayed_assertion(caller, replayed)
            raise RpcFailure(
                grpc.StatusCode.UNAUTHENTICATED,
                f"the assertion was issued for {replayed.audience}; {caller} must present one issued for"
                f" {replayed.expected}",
            ) from None
        except InvalidAssertion:
            raise RpcFailure(grpc.StatusCode.UNAUTHENTICATED, "a valid assertion is required") from None

    def _record_replayed_assertion(self, caller: str, replayed: AssertionForAnotherService) -> None:
        """Puts the refusal on the audit trail as a refused service call, like the calls the method policy refuses:
        the service misbehaved, not the person whose assertion it was."""
        event = audit_events.recorded_for_service(
            caller,
            "service_call",
            Resource("grpc_method", _served_method.get()),
            f"assertion issued for {replayed.audience}, not {replayed.expected}",
            False,
            "",
        )
        with self._pool.connection() as conn, conn.transaction(), conn.cursor() as cur:
            add_to_outbox(cur, event)

    def _session_person(
        self, token: str, now: datetime, missing: grpc.StatusCode = grpc.StatusCode.UNAUTHENTICATED
    ) -> Person:
        with self._pool.connection() as conn:
            person = sessions.session_person(conn, token, now)
        if person is None:
            raise RpcFailure(missing, "no open session")
        return person


def register(servicer: IdentityServicer) -> Callable[[grpc.Server], None]:
    """The registration callback start_grpc_server expects."""

    def add(server: grpc.Server) -> None:
        identity_pb2_grpc.add_IdentityServiceServicer_to_server(servicer, server)

    return add
