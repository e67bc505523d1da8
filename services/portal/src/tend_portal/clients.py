"""gRPC clients for identity and checkin, returning plain records.

Every call goes through grpc_calls.call: it carries a deadline, and a failure becomes a ServiceCallError whose
message is written there, never taken from the remote status details.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Protocol

import grpc
from google.protobuf.timestamp_pb2 import Timestamp
from tend.checkin.v1 import checkin_pb2, checkin_pb2_grpc
from tend.identity.v1 import identity_pb2, identity_pb2_grpc

from tend_portal.grpc_calls import call, check_health

IDENTITY_AUDIENCE = "identity"
CHECKIN_AUDIENCE = "checkin"
INDICATORS_AUDIENCE = "indicators"
NOTIFY_AUDIENCE = "notify"
AUDIT_AUDIENCE = "audit"
# The services the portal acts towards for the signed-in person; identity signs an assertion for each.
PORTAL_AUDIENCES = (IDENTITY_AUDIENCE, CHECKIN_AUDIENCE, INDICATORS_AUDIENCE, NOTIFY_AUDIENCE, AUDIT_AUDIENCE)


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
    """Identity's gRPC service, over the app's one channel to identity (see channels.py)."""

    def __init__(self, channel: grpc.Channel, timeout_seconds: float = 5.0) -> None:
        self._channel = channel
        self._stub = identity_pb2_grpc.IdentityServiceStub(self._channel)
        self._timeout = timeout_seconds

    def sign_in(self, username: str, password: str) -> SignedIn:
        request = identity_pb2.SignInRequest(username=username, password=password)
        response = call("SignIn", self._stub.SignIn, request, self._timeout)
        return SignedIn(
            session_token=response.session_token,
            person=_person(response.person),
            expires_at=_optional_datetime(response.expires_at),
        )

    def get_session(self, session_token: str, audiences: Sequence[str] = (CHECKIN_AUDIENCE,)) -> Session:
        request = identity_pb2.GetSessionRequest(session_token=session_token, audiences=list(audiences))
        response = call("GetSession", self._stub.GetSession, request, self._timeout)
        return Session(person=_person(response.person), assertions=dict(response.assertions))

    def sign_out(self, session_token: str) -> None:
        call("SignOut", self._stub.SignOut, identity_pb2.SignOutRequest(session_token=session_token), self._timeout)

    def issue_checkin_token(self, session_token: str) -> CheckinToken:
        request = identity_pb2.IssueCheckinTokenRequest(session_token=session_token)
        response = call("IssueCheckinToken", self._stub.IssueCheckinToken, request, self._timeout)
        return CheckinToken(token=response.token, expires_at=_optional_datetime(response.expires_at))

    def list_teaching_module_runs(self, actor_assertion: str) -> list[ModuleRun]:
        request = identity_pb2.ListTeachingModuleRunsRequest(actor_assertion=actor_assertion)
        response = call("ListTeachingModuleRuns", self._stub.ListTeachingModuleRuns, request, self._timeout)
        return [
            ModuleRun(module_run_id=run.module_run_id, module_code=run.module_code, title=run.title, term=run.term)
            for run in response.module_runs
        ]

    def get_preferences(self, session_token: str) -> Preferences:
        request = identity_pb2.GetPreferencesRequest(session_token=session_token)
        response = call("GetPreferences", self._stub.GetPreferences, request, self._timeout)
        return Preferences(landing_page=_LANDING_PAGES.get(response.preferences.landing_page, "actions"))

    def set_preferences(self, session_token: str, preferences: Preferences) -> Preferences:
        request = identity_pb2.SetPreferencesRequest(
            session_token=session_token,
            preferences=identity_pb2.Preferences(landing_page=_LANDING_PAGE_VALUES[preferences.landing_page]),
        )
        response = call("SetPreferences", self._stub.SetPreferences, request, self._timeout)
        return Preferences(landing_page=_LANDING_PAGES.get(response.preferences.landing_page, "actions"))

    def check_health(self) -> None:
        check_health(self._channel, self._timeout)


class CheckinClient:
    """Checkin's gRPC service, for the staff actions made through the portal, over the app's channel to checkin."""

    def __init__(self, channel: grpc.Channel, timeout_seconds: float = 5.0) -> None:
        self._channel = channel
        self._stub = checkin_pb2_grpc.CheckinServiceStub(self._channel)
        self._timeout = timeout_seconds

    def open_session(self, actor_assertion: str, module_run_id: str, room: str) -> OpenedSession:
        request = checkin_pb2.OpenSessionRequest(
            actor_assertion=actor_assertion, module_run_id=module_run_id, room=room
        )
        response = call("OpenSession", self._stub.OpenSession, request, self._timeout)
        return OpenedSession(session_id=response.session.session_id)

    def get_presenter_code(self, actor_assertion: str, session_id: str) -> PresenterCode:
        request = checkin_pb2.GetPresenterCodeRequest(actor_assertion=actor_assertion, session_id=session_id)
        response = call("GetPresenterCode", self._stub.GetPresenterCode, request, self._timeout)
        return PresenterCode(
            code=response.code,
            checkin_url=response.checkin_url,
            rotates_at=_datetime(response.rotates_at),
            step_seconds=response.step_seconds,
        )

    def check_health(self) -> None:
        check_health(self._channel, self._timeout)
