"""gRPC clients for identity and checkin, returning plain records, and the mapping of their failures to page messages.

Every call carries a deadline. A failure becomes a ServiceCallError whose message is written here, never taken from
the remote status details: those may carry personal data, and the portal must not echo it.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any, Protocol

import grpc
from google.protobuf.timestamp_pb2 import Timestamp
from grpc_health.v1 import health_pb2, health_pb2_grpc
from prometheus_client import Counter
from tend.checkin.v1 import checkin_pb2, checkin_pb2_grpc
from tend.identity.v1 import identity_pb2, identity_pb2_grpc

from tend_common.service_auth import channel_to

log = logging.getLogger(__name__)

CHECKIN_AUDIENCE = "checkin"
INDICATORS_AUDIENCE = "indicators"
NOTIFY_AUDIENCE = "notify"
AUDIT_AUDIENCE = "audit"
# The services the portal acts towards for the signed-in person; identity signs an assertion for each.
PORTAL_AUDIENCES = (CHECKIN_AUDIENCE, INDICATORS_AUDIENCE, NOTIFY_AUDIENCE, AUDIT_AUDIENCE)
# Readiness probes must answer quickly, whatever the timeout of ordinary calls.
_HEALTH_TIMEOUT_SECONDS = 2.0

SERVICE_CALL_FAILURES = Counter(
    "tend_portal_service_call_failures_total",
    "Calls to identity or checkin that failed, by method and status",
    ["method", "code"],
)


# Records: what the portal needs from a response, and nothing more.


@dataclasses.dataclass(frozen=True)
class Person:
    person_id: str
    is_staff: bool
    is_student: bool
    display_name: str
    roles: tuple[str, ...]


@dataclasses.dataclass(frozen=True)
class SignedIn:
    session_token: str
    person: Person
    expires_at: datetime | None


@dataclasses.dataclass(frozen=True)
class Session:
    """An open sign-in session, with the signed assertions of the person keyed by audience."""

    person: Person
    assertions: dict[str, str]

    def assertion_for(self, audience: str) -> str:
        return self.assertions.get(audience, "")


@dataclasses.dataclass(frozen=True)
class ModuleRun:
    module_run_id: str
    module_code: str
    title: str
    term: str


@dataclasses.dataclass(frozen=True)
class OpenedSession:
    session_id: str


@dataclasses.dataclass(frozen=True)
class PresenterCode:
    code: str
    checkin_url: str
    rotates_at: datetime
    step_seconds: int


@dataclasses.dataclass(frozen=True)
class Preferences:
    """The person's server-side preferences: the landing page is "actions" (nothing personal) or "overview"."""

    landing_page: str = "actions"


_LANDING_PAGES = {
    identity_pb2.LANDING_PAGE_UNSPECIFIED: "actions",
    identity_pb2.LANDING_PAGE_ACTIONS: "actions",
    identity_pb2.LANDING_PAGE_OVERVIEW: "overview",
}
_LANDING_PAGE_VALUES = {
    "actions": identity_pb2.LANDING_PAGE_ACTIONS,
    "overview": identity_pb2.LANDING_PAGE_OVERVIEW,
}


@dataclasses.dataclass(frozen=True)
class CheckinToken:
    token: str
    expires_at: datetime | None


# Failures.


class ServiceCallError(Exception):
    """A call to identity or checkin failed. `message` is safe to show; `http_status` is the page's status."""

    message = "Something went wrong on our side. Please try again in a moment."
    http_status = 502

    def __init__(self, method: str, code_name: str) -> None:
        super().__init__(f"{method} failed: {code_name}")
        self.method = method
        self.code_name = code_name


class Unauthenticated(ServiceCallError):
    message = "You are not signed in, or your session has ended. Please sign in again."
    http_status = 401


class NotFound(ServiceCallError):
    message = "We could not find that. It may have ended or never existed."
    http_status = 404


class PermissionDenied(ServiceCallError):
    message = "You do not have permission to do that."
    http_status = 403


class InvalidArgument(ServiceCallError):
    message = "Some of the details given were not valid. Check them and try again."
    http_status = 400


class Unavailable(ServiceCallError):
    message = "A service Tend relies on is not answering just now. Please try again in a moment."
    http_status = 503


_ERROR_BY_CODE: dict[Any, type[ServiceCallError]] = {
    grpc.StatusCode.UNAUTHENTICATED: Unauthenticated,
    grpc.StatusCode.NOT_FOUND: NotFound,
    grpc.StatusCode.PERMISSION_DENIED: PermissionDenied,
    grpc.StatusCode.INVALID_ARGUMENT: InvalidArgument,
    grpc.StatusCode.UNAVAILABLE: Unavailable,
    grpc.StatusCode.DEADLINE_EXCEEDED: Unavailable,
}


def _translate(method: str, error: grpc.RpcError) -> ServiceCallError:
    code = error.code() if hasattr(error, "code") else grpc.StatusCode.UNKNOWN
    code_name = getattr(code, "name", "UNKNOWN")
    SERVICE_CALL_FAILURES.labels(method=method, code=code_name).inc()
    # The status details are deliberately not logged: a remote service may have put a value in them.
    log.info("service call failed", extra={"fields": {"method": method, "code": code_name}})
    return _ERROR_BY_CODE.get(code, ServiceCallError)(method, code_name)


def _datetime(stamp: Timestamp) -> datetime:
    return stamp.ToDatetime(tzinfo=UTC)


def _optional_datetime(stamp: Timestamp) -> datetime | None:
    return _datetime(stamp) if stamp.seconds or stamp.nanos else None


def _person(message: identity_pb2.SignedInPerson) -> Person:
    return Person(
        person_id=message.person_id,
        is_staff=message.kind == identity_pb2.PERSON_KIND_STAFF,
        is_student=message.kind == identity_pb2.PERSON_KIND_STUDENT,
        display_name=message.display_name,
        roles=tuple(message.roles),
    )


def _check_health(channel: grpc.Channel, timeout: float) -> None:
    request = health_pb2.HealthCheckRequest(service="")
    response = health_pb2_grpc.HealthStub(channel).Check(request, timeout=min(timeout, _HEALTH_TIMEOUT_SECONDS))
    if response.status != health_pb2.HealthCheckResponse.SERVING:
        raise RuntimeError("not serving")


# Interfaces, so that the web app can be given any implementation.


class IdentityApi(Protocol):
    def sign_in(self, username: str, password: str) -> SignedIn: ...
    def get_session(self, session_token: str, audiences: Sequence[str] = (CHECKIN_AUDIENCE,)) -> Session: ...
    def sign_out(self, session_token: str) -> None: ...
    def issue_checkin_token(self, session_token: str) -> CheckinToken: ...
    def list_teaching_module_runs(self, actor_assertion: str) -> list[ModuleRun]: ...
    def get_preferences(self, session_token: str) -> Preferences: ...
    def set_preferences(self, session_token: str, preferences: Preferences) -> Preferences: ...
    def check_health(self) -> None: ...


class CheckinApi(Protocol):
    def open_session(self, actor_assertion: str, module_run_id: str, room: str) -> OpenedSession: ...
    def get_presenter_code(self, actor_assertion: str, session_id: str) -> PresenterCode: ...
    def check_health(self) -> None: ...


# Implementations over gRPC.


class IdentityClient:
    """Identity's gRPC service. The channel connects lazily and reconnects on its own."""

    def __init__(self, target: str, timeout_seconds: float = 5.0, service_key: str = "") -> None:
        self._channel = channel_to(target, "identity", "portal", service_key)
        self._stub = identity_pb2_grpc.IdentityServiceStub(self._channel)
        self._timeout = timeout_seconds

    def close(self) -> None:
        self._channel.close()

    def sign_in(self, username: str, password: str) -> SignedIn:
        request = identity_pb2.SignInRequest(username=username, password=password)
        try:
            response = self._stub.SignIn(request, timeout=self._timeout)
        except grpc.RpcError as exc:
            raise _translate("SignIn", exc) from None
        return SignedIn(
            session_token=response.session_token,
            person=_person(response.person),
            expires_at=_optional_datetime(response.expires_at),
        )

    def get_session(self, session_token: str, audiences: Sequence[str] = (CHECKIN_AUDIENCE,)) -> Session:
        request = identity_pb2.GetSessionRequest(session_token=session_token, audiences=list(audiences))
        try:
            response = self._stub.GetSession(request, timeout=self._timeout)
        except grpc.RpcError as exc:
            raise _translate("GetSession", exc) from None
        return Session(person=_person(response.person), assertions=dict(response.assertions))

    def sign_out(self, session_token: str) -> None:
        try:
            self._stub.SignOut(identity_pb2.SignOutRequest(session_token=session_token), timeout=self._timeout)
        except grpc.RpcError as exc:
            raise _translate("SignOut", exc) from None

    def issue_checkin_token(self, session_token: str) -> CheckinToken:
        request = identity_pb2.IssueCheckinTokenRequest(session_token=session_token)
        try:
            response = self._stub.IssueCheckinToken(request, timeout=self._timeout)
        except grpc.RpcError as exc:
            raise _translate("IssueCheckinToken", exc) from None
        return CheckinToken(token=response.token, expires_at=_optional_datetime(response.expires_at))

    def list_teaching_module_runs(self, actor_assertion: str) -> list[ModuleRun]:
        request = identity_pb2.ListTeachingModuleRunsRequest(actor_assertion=actor_assertion)
        try:
            response = self._stub.ListTeachingModuleRuns(request, timeout=self._timeout)
        except grpc.RpcError as exc:
            raise _translate("ListTeachingModuleRuns", exc) from None
        return [
            ModuleRun(module_run_id=run.module_run_id, module_code=run.module_code, title=run.title, term=run.term)
            for run in response.module_runs
        ]

    def get_preferences(self, session_token: str) -> Preferences:
        request = identity_pb2.GetPreferencesRequest(session_token=session_token)
        try:
            response = self._stub.GetPreferences(request, timeout=self._timeout)
        except grpc.RpcError as exc:
            raise _translate("GetPreferences", exc) from None
        return Preferences(landing_page=_LANDING_PAGES.get(response.preferences.landing_page, "actions"))

    def set_preferences(self, session_token: str, preferences: Preferences) -> Preferences:
        request = identity_pb2.SetPreferencesRequest(
            session_token=session_token,
            preferences=identity_pb2.Preferences(landing_page=_LANDING_PAGE_VALUES[preferences.landing_page]),
        )
        try:
            response = self._stub.SetPreferences(request, timeout=self._timeout)
        except grpc.RpcError as exc:
            raise _translate("SetPreferences", exc) from None
        return Preferences(landing_page=_LANDING_PAGES.get(response.preferences.landing_page, "actions"))

    def check_health(self) -> None:
        _check_health(self._channel, self._timeout)


class CheckinClient:
    """Checkin's gRPC service, for the staff actions made through the portal."""

    def __init__(self, target: str, timeout_seconds: float = 5.0, service_key: str = "") -> None:
        self._channel = channel_to(target, "checkin", "portal", service_key)
        self._stub = checkin_pb2_grpc.CheckinServiceStub(self._channel)
        self._timeout = timeout_seconds

    def close(self) -> None:
        self._channel.close()

    def open_session(self, actor_assertion: str, module_run_id: str, room: str) -> OpenedSession:
        request = checkin_pb2.OpenSessionRequest(
            actor_assertion=actor_assertion, module_run_id=module_run_id, room=room
        )
        try:
            response = self._stub.OpenSession(request, timeout=self._timeout)
        except grpc.RpcError as exc:
            raise _translate("OpenSession", exc) from None
        return OpenedSession(session_id=response.session.session_id)

    def get_presenter_code(self, actor_assertion: str, session_id: str) -> PresenterCode:
        request = checkin_pb2.GetPresenterCodeRequest(actor_assertion=actor_assertion, session_id=session_id)
        try:
            response = self._stub.GetPresenterCode(request, timeout=self._timeout)
        except grpc.RpcError as exc:
            raise _translate("GetPresenterCode", exc) from None
        return PresenterCode(
            code=response.code,
            checkin_url=response.checkin_url,
            rotates_at=_datetime(response.rotates_at),
            step_seconds=response.step_seconds,
        )

    def check_health(self) -> None:
        _check_health(self._channel, self._timeout)
