"""The IdentityService gRPC servicer. Each method validates its request, calls one domain function and translates
the outcome; failures carry fixed messages that never echo what the caller sent."""

from __future__ import annotations

import functools
import logging
import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import TypeVar

import grpc
from psycopg_pool import ConnectionPool
from tend.identity.v1 import identity_pb2, identity_pb2_grpc

from tend_common.messaging.envelope import timestamp
from tend_identity import accounts, checkin_tokens, decisions, sessions
from tend_identity.assertions import InvalidAssertion, issue_assertion, verify_assertion
from tend_identity.metrics import ACCESS_DECISIONS, SIGN_INS, TOKENS_ISSUED
from tend_identity.model import Actor, Person, PersonKind, Resource
from tend_identity.settings import Settings
from tend_identity.signing import ALGORITHM, Keyring
from tend_identity.store import people as people_store

log = logging.getLogger(__name__)

SERVICE_NAME: str = identity_pb2.DESCRIPTOR.services_by_name["IdentityService"].full_name

MAX_USERNAME_LENGTH = 150
# Argon2 takes any length, but hashing megabytes on request would be an easy way to burn CPU.
MAX_PASSWORD_LENGTH = 1024
MAX_AUDIENCES = 16
MAX_ASSERTION_LENGTH = 4096
MAX_PURPOSE_LENGTH = 500
AUDIENCE = re.compile(r"[a-z][a-z0-9_-]{0,63}")
ACTION = re.compile(r"[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*){0,3}")
RESOURCE_KIND = re.compile(r"[a-z][a-z0-9_]{0,31}")
# Resource ids and request ids are opaque identifiers; this shape keeps free text (and so personal data) out.
IDENTIFIER = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,127}")

_PERSON_KINDS = {PersonKind.STUDENT: identity_pb2.PERSON_KIND_STUDENT, PersonKind.STAFF: identity_pb2.PERSON_KIND_STAFF}


class RpcFailure(Exception):
    """Ends the call with `code` and a fixed, non-identifying message."""

    def __init__(self, code: grpc.StatusCode, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


_Servicer = TypeVar("_Servicer")
_Request = TypeVar("_Request")
_Response = TypeVar("_Response")


def _rpc(
    method: Callable[[_Servicer, _Request, grpc.ServicerContext], _Response],
) -> Callable[[_Servicer, _Request, grpc.ServicerContext], _Response]:
    """Turns RpcFailure into its status, and any other error into INTERNAL with a fixed message: gRPC would
    otherwise send the exception's text, which may quote a value from the database."""

    @functools.wraps(method)
    def handle(self: _Servicer, request: _Request, context: grpc.ServicerContext) -> _Response:
        try:
            return method(self, request, context)
        except RpcFailure as failure:
            context.abort(failure.code, failure.message)
        except Exception as exc:
            log.exception("request failed", extra={"fields": {"method": method.__name__, "error": type(exc).__name__}})
            context.abort(grpc.StatusCode.INTERNAL, "internal error")
        raise AssertionError("context.abort returned")  # it always raises

    return handle


def _request_id(context: grpc.ServicerContext) -> str:
    for key, value in context.invocation_metadata() or ():
        if key == "x-request-id" and isinstance(value, str) and IDENTIFIER.fullmatch(value):
            return value
    return ""


def _person_message(person: Person) -> identity_pb2.SignedInPerson:
    return identity_pb2.SignedInPerson(
        person_id=str(person.id),
        kind=_PERSON_KINDS[person.kind],
        display_name=person.display_name,
        roles=list(person.roles),
    )


class IdentityServicer(identity_pb2_grpc.IdentityServiceServicer):
    def __init__(
        self,
        pool: ConnectionPool,
        keyring: Keyring,
        settings: Settings,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._pool = pool
        self._keyring = keyring
        self._settings = settings
        self._clock = clock

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
            person=_person_message(signed_in.person),
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
        with self._pool.connection() as conn:
            person = sessions.session_person(conn, request.session_token, now)
        if person is None:
            raise RpcFailure(grpc.StatusCode.NOT_FOUND, "no open session")
        ttl = timedelta(seconds=self._settings.assertion_ttl_seconds)
        assertions = {audience: issue_assertion(self._keyring, person, audience, ttl, now) for audience in audiences}
        TOKENS_ISSUED.labels("assertion").inc(len(assertions))
        return identity_pb2.GetSessionResponse(person=_person_message(person), assertions=assertions)

    @_rpc
    def SignOut(
        self, request: identity_pb2.SignOutRequest, context: grpc.ServicerContext
    ) -> identity_pb2.SignOutResponse:
        with self._pool.connection() as conn:
            sessions.close_session(conn, request.session_token, self._clock())
        return identity_pb2.SignOutResponse()

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

    @_rpc
    def CheckAccess(
        self, request: identity_pb2.CheckAccessRequest, context: grpc.ServicerContext
    ) -> identity_pb2.CheckAccessResponse:
        if not ACTION.fullmatch(request.action):
            raise RpcFailure(grpc.StatusCode.INVALID_ARGUMENT, "an action such as teaching_session.open is required")
        if not RESOURCE_KIND.fullmatch(request.resource.kind) or not IDENTIFIER.fullmatch(request.resource.id):
            raise RpcFailure(grpc.StatusCode.INVALID_ARGUMENT, "a resource kind and id are required")
        if len(request.purpose) > MAX_PURPOSE_LENGTH:
            raise RpcFailure(grpc.StatusCode.INVALID_ARGUMENT, "the purpose is too long")
        actor = self._actor(request.actor_assertion)
        resource = Resource(kind=request.resource.kind, id=request.resource.id)
        with self._pool.connection() as conn:
            decision = decisions.check_access(
                conn, actor, request.action, resource, request.purpose, _request_id(context)
            )
        ACCESS_DECISIONS.labels("allowed" if decision.allowed else "refused", decision.rule).inc()
        return identity_pb2.CheckAccessResponse(allowed=decision.allowed, reason=decision.reason, rule=decision.rule)

    @_rpc
    def ListTeachingModuleRuns(
        self, request: identity_pb2.ListTeachingModuleRunsRequest, context: grpc.ServicerContext
    ) -> identity_pb2.ListTeachingModuleRunsResponse:
        actor = self._actor(request.actor_assertion)
        with self._pool.connection() as conn:
            runs = people_store.teaching_module_runs(conn, actor.person_id)
        return identity_pb2.ListTeachingModuleRunsResponse(
            module_runs=[
                identity_pb2.ModuleRun(
                    module_run_id=str(run.id),
                    module_code=run.module_code,
                    title=run.title,
                    term=f"{run.academic_year} {run.term}",
                )
                for run in runs
            ]
        )

    def _actor(self, assertion: str) -> Actor:
        if not assertion or len(assertion) > MAX_ASSERTION_LENGTH:
            raise RpcFailure(grpc.StatusCode.UNAUTHENTICATED, "a valid assertion is required")
        try:
            return verify_assertion(self._keyring, assertion)
        except InvalidAssertion:
            raise RpcFailure(grpc.StatusCode.UNAUTHENTICATED, "a valid assertion is required") from None


def register(servicer: IdentityServicer) -> Callable[[grpc.Server], None]:
    """The registration callback start_grpc_server expects."""

    def add(server: grpc.Server) -> None:
        identity_pb2_grpc.add_IdentityServiceServicer_to_server(servicer, server)

    return add
