"""Fake identity and checkin gRPC servers, started in-process on free ports, and a portal app wired to them.

The fakes implement the generated servicer base classes; the portal reaches them over real gRPC. They keep what they
were asked so tests can check what the portal sent, and carry canary values that must never reach a page that
should not show them.
"""

from __future__ import annotations

import re
import secrets
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, NoReturn, TypeVar

import grpc
import pytest
from flask import Flask
from flask.testing import FlaskClient
from google.protobuf.descriptor import ServiceDescriptor
from google.protobuf.timestamp_pb2 import Timestamp
from tend.checkin.v1 import checkin_pb2, checkin_pb2_grpc
from tend.identity.v1 import identity_pb2, identity_pb2_grpc
from werkzeug.test import TestResponse

from tend_common.grpc_server import GrpcServer, start_grpc_server
from tend_portal.settings import Settings
from tend_portal.web import create_app

PASSWORD = "correct horse battery staple"
CHECKIN_BASE_URL = "https://checkin.example.ac.uk"
# Canaries: personal values of the fake people. Pages that must show nothing personal must not contain them.
STAFF_NAME = "Dr Ada Canary-7c1e5b"
STUDENT_NAME = "Grace Canary-19d4aa"
STAFF_EMAIL = "canary-7c1e5b@demo.tend.invalid"

ServicerT = TypeVar("ServicerT")


def abort(context: grpc.ServicerContext, code: grpc.StatusCode, details: str) -> NoReturn:
    context.abort(code, details)
    raise AssertionError("abort returns only by raising")


def _timestamp(moment: datetime) -> Timestamp:
    stamp = Timestamp()
    stamp.FromDatetime(moment)
    return stamp


@dataclass
class FakePerson:
    person_id: str
    username: str
    kind: identity_pb2.PersonKind.ValueType
    display_name: str
    roles: tuple[str, ...]

    def message(self) -> identity_pb2.SignedInPerson:
        return identity_pb2.SignedInPerson(
            person_id=self.person_id, kind=self.kind, display_name=self.display_name, roles=list(self.roles)
        )


STAFF = FakePerson(
    person_id=str(uuid.uuid4()),
    username="lecturer1",
    kind=identity_pb2.PERSON_KIND_STAFF,
    display_name=STAFF_NAME,
    roles=("lecturer", "personal_tutor"),
)
STUDENT = FakePerson(
    person_id=str(uuid.uuid4()),
    username="student001",
    kind=identity_pb2.PERSON_KIND_STUDENT,
    display_name=STUDENT_NAME,
    roles=("student",),
)
MODULE_RUNS = (
    identity_pb2.ModuleRun(module_run_id="run-cs101", module_code="CS101", title="Programming", term="2026/27 autumn"),
    identity_pb2.ModuleRun(module_run_id="run-cs102", module_code="CS102", title="Data", term="2026/27 autumn"),
)


def assertion_for(person: FakePerson, audience: str) -> str:
    """The fake's stand-in for a signed assertion: opaque to the portal, recognisable to the tests."""
    return f"assertion.{audience}.{person.person_id}"


class FakeIdentity(identity_pb2_grpc.IdentityServiceServicer):
    """Identity as far as the portal uses it: accounts, sessions, check-in tokens and teaching module runs."""

    def __init__(self) -> None:
        self.people = {p.username: p for p in (STAFF, STUDENT)}
        self.sessions: dict[str, FakePerson] = {}
        self.revoked: list[str] = []
        self.audiences_asked: list[list[str]] = []
        self.list_assertions: list[str] = []
        self.issued_tokens: list[str] = []
        # Landing page preferences by person id, as identity keeps them (server-side).
        self.landing_pages: dict[str, identity_pb2.LandingPage.ValueType] = {}
        self.preferences_unavailable = False
        # Set to make every call fail with this status (details carry a canary), or answer only after a delay.
        self.fail_with: grpc.StatusCode | None = None
        self.delay_seconds = 0.0
        self._lock = threading.Lock()

    def _misbehave(self, context: grpc.ServicerContext) -> None:
        if self.delay_seconds:
            time.sleep(self.delay_seconds)
        if self.fail_with is not None:
            abort(context, self.fail_with, f"detail naming {STAFF_NAME} <{STAFF_EMAIL}>")

    def SignIn(self, request: identity_pb2.SignInRequest, context: grpc.ServicerContext) -> identity_pb2.SignInResponse:
        self._misbehave(context)
        person = self.people.get(request.username)
        if person is None or request.password != PASSWORD:
            # Real services must not do this; the portal must not echo it even if one did.
            abort(context, grpc.StatusCode.UNAUTHENTICATED, f"no such account {STAFF_EMAIL}")
        token = secrets.token_urlsafe(32)
        with self._lock:
            self.sessions[token] = person
        return identity_pb2.SignInResponse(
            session_token=token,
            person=person.message(),
            expires_at=_timestamp(datetime.now(UTC) + timedelta(hours=8)),
        )

    def _person(self, token: str, context: grpc.ServicerContext) -> FakePerson:
        with self._lock:
            person = self.sessions.get(token)
        if person is None:
            abort(context, grpc.StatusCode.NOT_FOUND, "session not found")
        return person

    def GetSession(
        self, request: identity_pb2.GetSessionRequest, context: grpc.ServicerContext
    ) -> identity_pb2.GetSessionResponse:
        self._misbehave(context)
        self.audiences_asked.append(list(request.audiences))
        person = self._person(request.session_token, context)
        return identity_pb2.GetSessionResponse(
            person=person.message(),
            assertions={audience: assertion_for(person, audience) for audience in request.audiences},
        )

    def SignOut(
        self, request: identity_pb2.SignOutRequest, context: grpc.ServicerContext
    ) -> identity_pb2.SignOutResponse:
        self._misbehave(context)
        with self._lock:
            self.sessions.pop(request.session_token, None)
            self.revoked.append(request.session_token)
        return identity_pb2.SignOutResponse()

    def IssueCheckinToken(
        self, request: identity_pb2.IssueCheckinTokenRequest, context: grpc.ServicerContext
    ) -> identity_pb2.IssueCheckinTokenResponse:
        self._misbehave(context)
        person = self._person(request.session_token, context)
        if person.kind != identity_pb2.PERSON_KIND_STUDENT:
            abort(context, grpc.StatusCode.PERMISSION_DENIED, "only students check in")
        token = f"checkin-token.{secrets.token_urlsafe(16)}"
        self.issued_tokens.append(token)
        return identity_pb2.IssueCheckinTokenResponse(
            token=token, expires_at=_timestamp(datetime.now(UTC) + timedelta(hours=1))
        )

    def GetPublicKeys(
        self, request: identity_pb2.GetPublicKeysRequest, context: grpc.ServicerContext
    ) -> identity_pb2.GetPublicKeysResponse:
        abort(context, grpc.StatusCode.UNIMPLEMENTED, "not used by the portal")

    def CheckAccess(
        self, request: identity_pb2.CheckAccessRequest, context: grpc.ServicerContext
    ) -> identity_pb2.CheckAccessResponse:
        abort(context, grpc.StatusCode.UNIMPLEMENTED, "not used by the portal")

    def _not_used_by_the_portal(self, request: Any, context: grpc.ServicerContext) -> Any:
        abort(context, grpc.StatusCode.UNIMPLEMENTED, "not used by the portal")

    # Identity's other methods, which the portal does not call (yet); declared so the fake is a complete servicer.
    ListVisibleStudents = ResolvePseudonyms = MapToPseudonyms = ListResponsibleStaff = _not_used_by_the_portal
    GetContactDetails = SignOutEverywhere = StartOidcSignIn = FinishOidcSignIn = _not_used_by_the_portal
    RequestBreakGlass = ListBreakGlassGrants = CreateModule = UpdateModule = _not_used_by_the_portal
    DeleteModule = RestoreModule = FindPerson = ListModules = _not_used_by_the_portal

    def ListTeachingModuleRuns(
        self, request: identity_pb2.ListTeachingModuleRunsRequest, context: grpc.ServicerContext
    ) -> identity_pb2.ListTeachingModuleRunsResponse:
        self._misbehave(context)
        self.list_assertions.append(request.actor_assertion)
        if request.actor_assertion != assertion_for(STAFF, "identity"):
            return identity_pb2.ListTeachingModuleRunsResponse()
        return identity_pb2.ListTeachingModuleRunsResponse(module_runs=list(MODULE_RUNS))

    def GetPreferences(
        self, request: identity_pb2.GetPreferencesRequest, context: grpc.ServicerContext
    ) -> identity_pb2.GetPreferencesResponse:
        self._misbehave(context)
        if self.preferences_unavailable:
            abort(context, grpc.StatusCode.UNAVAILABLE, "preferences unavailable")
        person = self._person(request.session_token, context)
        landing = self.landing_pages.get(person.person_id, identity_pb2.LANDING_PAGE_ACTIONS)
        return identity_pb2.GetPreferencesResponse(preferences=identity_pb2.Preferences(landing_page=landing))

    def SetPreferences(
        self, request: identity_pb2.SetPreferencesRequest, context: grpc.ServicerContext
    ) -> identity_pb2.SetPreferencesResponse:
        self._misbehave(context)
        person = self._person(request.session_token, context)
        self.landing_pages[person.person_id] = request.preferences.landing_page
        return identity_pb2.SetPreferencesResponse(preferences=request.preferences)


@dataclass
class OpenedRecord:
    actor_assertion: str
    module_run_id: str
    room: str


@dataclass
class FakeCheckin(checkin_pb2_grpc.CheckinServiceServicer):
    """Checkin as far as the portal uses it: opening sessions (only for the staff member's runs) and their codes."""

    checkin_base_url: str = CHECKIN_BASE_URL
    code: str = "493817"
    opened: list[OpenedRecord] = field(default_factory=list)
    sessions: dict[str, checkin_pb2.TeachingSession] = field(default_factory=dict)
    # Set to make GetPresenterCode answer with another address, as a misconfigured or hostile checkin might.
    checkin_url_override: str | None = None

    def OpenSession(
        self, request: checkin_pb2.OpenSessionRequest, context: grpc.ServicerContext
    ) -> checkin_pb2.OpenSessionResponse:
        self.opened.append(OpenedRecord(request.actor_assertion, request.module_run_id, request.room))
        if request.actor_assertion != assertion_for(STAFF, "checkin"):
            abort(context, grpc.StatusCode.UNAUTHENTICATED, "bad assertion")
        if request.module_run_id not in {run.module_run_id for run in MODULE_RUNS}:
            abort(context, grpc.StatusCode.PERMISSION_DENIED, f"{STAFF_NAME} does not teach this")
        now = datetime.now(UTC)
        session = checkin_pb2.TeachingSession(
            session_id=str(uuid.uuid4()),
            module_run_id=request.module_run_id,
            room=request.room,
            starts_at=_timestamp(now),
            ends_at=_timestamp(now + timedelta(hours=1)),
        )
        self.sessions[session.session_id] = session
        return checkin_pb2.OpenSessionResponse(session=session)

    def GetPresenterCode(
        self, request: checkin_pb2.GetPresenterCodeRequest, context: grpc.ServicerContext
    ) -> checkin_pb2.GetPresenterCodeResponse:
        if request.actor_assertion != assertion_for(STAFF, "checkin"):
            abort(context, grpc.StatusCode.PERMISSION_DENIED, "not presenting this session")
        session = self.sessions.get(request.session_id)
        if session is None:
            abort(context, grpc.StatusCode.NOT_FOUND, "no such session")
        url = self.checkin_url_override or f"{self.checkin_base_url}/c/{session.session_id}?code={self.code}"
        return checkin_pb2.GetPresenterCodeResponse(
            code=self.code,
            checkin_url=url,
            rotates_at=_timestamp(datetime.now(UTC) + timedelta(seconds=9)),
            step_seconds=15,
            session=session,
        )

    # Not used by the portal's own pages; test_web_corrections.py overrides the correction methods.
    def ImportTimetable(
        self, request: checkin_pb2.ImportTimetableRequest, context: grpc.ServicerContext
    ) -> checkin_pb2.ImportTimetableResponse:
        abort(context, grpc.StatusCode.UNIMPLEMENTED, "not used by the portal")

    def ListSessions(
        self, request: checkin_pb2.ListSessionsRequest, context: grpc.ServicerContext
    ) -> checkin_pb2.ListSessionsResponse:
        abort(context, grpc.StatusCode.UNIMPLEMENTED, "not used by these tests")

    def RecordAttendanceCorrections(
        self, request: checkin_pb2.RecordAttendanceCorrectionsRequest, context: grpc.ServicerContext
    ) -> checkin_pb2.RecordAttendanceCorrectionsResponse:
        abort(context, grpc.StatusCode.UNIMPLEMENTED, "not used by these tests")


IDENTITY_SERVICE = identity_pb2.DESCRIPTOR.services_by_name["IdentityService"]
CHECKIN_SERVICE = checkin_pb2.DESCRIPTOR.services_by_name["CheckinService"]


def serving(
    servicer: ServicerT,
    add_to_server: Callable[[ServicerT, grpc.Server], None],
    service: ServiceDescriptor,
) -> Iterator[tuple[ServicerT, GrpcServer]]:
    """Serves a fake servicer over real gRPC on a free port; a fixture does `yield from serving(...)`.

    Yields `(servicer, server)` once and stops the server when resumed (at fixture teardown). `add_to_server` is the
    generated `add_<X>Servicer_to_server`; `service` is that service's descriptor, so the server reports it in health
    checks and reflection as a real one would.
    """
    server = start_grpc_server(lambda s: add_to_server(servicer, s), [service.full_name], port=0, max_workers=4)
    try:
        yield servicer, server
    finally:
        server.stop(grace_seconds=0)


@pytest.fixture
def fake_identity() -> Iterator[tuple[FakeIdentity, GrpcServer]]:
    yield from serving(FakeIdentity(), identity_pb2_grpc.add_IdentityServiceServicer_to_server, IDENTITY_SERVICE)


@pytest.fixture
def fake_checkin() -> Iterator[tuple[FakeCheckin, GrpcServer]]:
    yield from serving(FakeCheckin(), checkin_pb2_grpc.add_CheckinServiceServicer_to_server, CHECKIN_SERVICE)


@pytest.fixture
def identity(fake_identity: tuple[FakeIdentity, GrpcServer]) -> FakeIdentity:
    return fake_identity[0]


@pytest.fixture
def checkin(fake_checkin: tuple[FakeCheckin, GrpcServer]) -> FakeCheckin:
    return fake_checkin[0]


@pytest.fixture
def settings(fake_identity: tuple[FakeIdentity, GrpcServer], fake_checkin: tuple[FakeCheckin, GrpcServer]) -> Settings:
    return Settings(
        secret_key="a test secret that is long enough",
        identity_target=f"127.0.0.1:{fake_identity[1].port}",
        checkin_target=f"127.0.0.1:{fake_checkin[1].port}",
        checkin_base_url=CHECKIN_BASE_URL,
        grpc_timeout_seconds=5.0,
    )


@pytest.fixture
def app(settings: Settings) -> Flask:
    return create_app(settings)


_CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


def csrf_from(html: str) -> str:
    found = _CSRF.search(html)
    assert found is not None, "the page has no CSRF token"
    return found.group(1)


class PortalBrowser:
    """A browser on the portal: Flask's test client, which keeps cookies, plus form helpers."""

    def __init__(self, client: FlaskClient) -> None:
        self.client = client

    def get(self, path: str, **kwargs: Any) -> TestResponse:
        return self.client.get(path, **kwargs)

    def csrf_token(self) -> str:
        return csrf_from(self.client.get("/sign-in").get_data(as_text=True))

    def post(self, path: str, data: dict[str, str], *, with_csrf: bool = True, **kwargs: Any) -> TestResponse:
        form = {**data, "csrf_token": self.csrf_token()} if with_csrf else dict(data)
        return self.client.post(path, data=form, **kwargs)

    def sign_in(self, person: FakePerson, password: str = PASSWORD) -> TestResponse:
        return self.post("/sign-in", {"username": person.username, "password": password})

    def session_cookie(self) -> str | None:
        cookie = self.client.get_cookie("tend_session")
        return None if cookie is None else cookie.value


@pytest.fixture
def browser(app: Flask) -> PortalBrowser:
    return PortalBrowser(app.test_client())


@pytest.fixture
def staff() -> FakePerson:
    return STAFF


@pytest.fixture
def student() -> FakePerson:
    return STUDENT


@pytest.fixture
def signed_in_staff(browser: PortalBrowser, staff: FakePerson) -> PortalBrowser:
    assert browser.sign_in(staff).status_code == 303
    return browser


@pytest.fixture
def signed_in_student(browser: PortalBrowser, student: FakePerson) -> PortalBrowser:
    assert browser.sign_in(student).status_code == 303
    return browser
