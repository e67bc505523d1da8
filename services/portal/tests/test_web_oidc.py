"""Signing in with the institution's OpenID Connect provider (through identity), and signing out everywhere."""

from __future__ import annotations

import dataclasses
import secrets
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qs, urlsplit

import grpc
import pytest
from flask import Flask
from tend.identity.v1 import identity_pb2, identity_pb2_grpc

from services.portal.tests.conftest import (
    IDENTITY_SERVICE,
    STAFF,
    FakeIdentity,
    FakePerson,
    PortalBrowser,
    _timestamp,
    abort,
    serving,
)
from tend_common.grpc_server import GrpcServer
from tend_portal.settings import Settings
from tend_portal.web import create_app

PROVIDER = "https://login.example.ac.uk/authorize"
CALLBACK = "http://127.0.0.1:8000/sign-in/oidc/callback"


class OidcIdentity(FakeIdentity):
    """Identity with a provider configured: starts hand out a state, finishing with it (once) signs STAFF in."""

    def __init__(self) -> None:
        super().__init__()
        self.configured = True
        self.redirect_uris: list[str] = []
        self.pending: set[str] = set()
        self.finished: list[tuple[str, str]] = []

    def StartOidcSignIn(
        self, request: identity_pb2.StartOidcSignInRequest, context: grpc.ServicerContext
    ) -> identity_pb2.StartOidcSignInResponse:
        if not self.configured:
            abort(context, grpc.StatusCode.FAILED_PRECONDITION, "OpenID Connect sign-in is not configured")
        self.redirect_uris.append(request.redirect_uri)
        state = secrets.token_urlsafe(16)
        self.pending.add(state)
        return identity_pb2.StartOidcSignInResponse(authorization_url=f"{PROVIDER}?state={state}", state=state)

    def FinishOidcSignIn(
        self, request: identity_pb2.FinishOidcSignInRequest, context: grpc.ServicerContext
    ) -> identity_pb2.SignInResponse:
        self.finished.append((request.state, request.code))
        if request.state not in self.pending or request.code != "good-code":
            abort(context, grpc.StatusCode.UNAUTHENTICATED, "sign-in failed")
        self.pending.discard(request.state)
        token = secrets.token_urlsafe(32)
        self.sessions[token] = STAFF
        return identity_pb2.SignInResponse(
            session_token=token,
            person=STAFF.message(),
            expires_at=_timestamp(datetime.now(UTC) + timedelta(hours=8)),
        )

    def SignOutEverywhere(
        self, request: identity_pb2.SignOutEverywhereRequest, context: grpc.ServicerContext
    ) -> identity_pb2.SignOutEverywhereResponse:
        person = self._person(request.session_token, context)
        mine = [token for token, someone in self.sessions.items() if someone.person_id == person.person_id]
        for token in mine:
            del self.sessions[token]
        return identity_pb2.SignOutEverywhereResponse(revoked=len(mine))


@pytest.fixture
def fake_identity() -> Iterator[tuple[FakeIdentity, GrpcServer]]:
    yield from serving(OidcIdentity(), identity_pb2_grpc.add_IdentityServiceServicer_to_server, IDENTITY_SERVICE)


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return dataclasses.replace(settings, oidc_institution_name="Demo University")


def _oidc(identity: FakeIdentity) -> OidcIdentity:
    assert isinstance(identity, OidcIdentity)
    return identity


def _start(browser: PortalBrowser, next_path: str = "/") -> str:
    response = browser.post("/sign-in/oidc", {"next": next_path})
    assert response.status_code == 303, response.get_data(as_text=True)
    location = response.headers["Location"]
    assert location.startswith(PROVIDER)
    return parse_qs(urlsplit(location).query)["state"][0]


def test_the_sign_in_page_offers_the_institution_only_when_configured(
    browser: PortalBrowser, settings: Settings
) -> None:
    page = browser.get("/sign-in").get_data(as_text=True)
    assert "Sign in with Demo University" in page
    assert 'action="/sign-in/oidc"' in page

    plain = create_app(dataclasses.replace(settings, oidc_institution_name="")).test_client()
    assert "Sign in with" not in plain.get("/sign-in").get_data(as_text=True)


def test_signing_in_with_the_provider_opens_a_session_and_goes_on(
    browser: PortalBrowser, identity: FakeIdentity
) -> None:
    state = _start(browser, "/me")
    assert _oidc(identity).redirect_uris == [CALLBACK]

    response = browser.get(f"/sign-in/oidc/callback?state={state}&code=good-code")

    assert response.status_code == 303
    assert response.headers["Location"] == "/me"
    assert browser.session_cookie() in identity.sessions
    assert STAFF.display_name in browser.get("/me").get_data(as_text=True)


def test_a_callback_this_browser_did_not_start_is_refused_without_asking_identity(
    browser: PortalBrowser, identity: FakeIdentity, app: Flask
) -> None:
    # Another browser (the attacker's) starts a sign-in; its callback address is replayed in the victim's browser.
    state = _start(PortalBrowser(app.test_client()))

    response = browser.get(f"/sign-in/oidc/callback?state={state}&code=good-code")

    assert response.status_code == 400
    assert "could not sign you in" in response.get_data(as_text=True)
    assert _oidc(identity).finished == []
    assert browser.session_cookie() is None


def test_a_refused_code_shows_a_plain_message(browser: PortalBrowser, identity: FakeIdentity) -> None:
    state = _start(browser)
    response = browser.get(f"/sign-in/oidc/callback?state={state}&code=stolen-code")
    page = response.get_data(as_text=True)
    assert response.status_code == 401
    assert "could not sign you in" in page
    assert "canary" not in page.lower()
    assert browser.session_cookie() is None


def test_a_state_works_once(browser: PortalBrowser, identity: FakeIdentity) -> None:
    state = _start(browser)
    assert browser.get(f"/sign-in/oidc/callback?state={state}&code=good-code").status_code == 303
    browser.client.delete_cookie("tend_session")
    assert browser.get(f"/sign-in/oidc/callback?state={state}&code=good-code").status_code == 400


def test_a_cancelled_sign_in_says_so(browser: PortalBrowser) -> None:
    _start(browser)
    response = browser.get("/sign-in/oidc/callback?error=access_denied&error_description=<script>")
    assert response.status_code == 400
    assert "cancelled" in response.get_data(as_text=True)
    assert "<script>" not in response.get_data(as_text=True)


def test_without_a_provider_identity_says_so_and_the_page_explains(
    browser: PortalBrowser, identity: FakeIdentity
) -> None:
    _oidc(identity).configured = False
    response = browser.post("/sign-in/oidc", {"next": "/"})
    assert response.status_code == 503
    assert "Sign in with your Tend password" in response.get_data(as_text=True)


def test_starting_needs_the_csrf_token(browser: PortalBrowser, identity: FakeIdentity) -> None:
    assert browser.post("/sign-in/oidc", {"next": "/"}, with_csrf=False).status_code == 400
    assert browser.get("/sign-in/oidc").status_code == 405
    assert _oidc(identity).redirect_uris == []


def test_sign_out_everywhere_ends_the_other_sessions_too(app: Flask, staff: FakePerson, identity: FakeIdentity) -> None:
    laptop, phone = PortalBrowser(app.test_client()), PortalBrowser(app.test_client())
    assert laptop.sign_in(staff).status_code == 303
    assert phone.sign_in(staff).status_code == 303
    assert phone.get("/me").status_code == 200
    page = laptop.get("/me").get_data(as_text=True)
    assert 'action="/sign-out-everywhere"' in page

    response = laptop.post("/sign-out-everywhere", {})

    assert response.status_code == 200
    assert "We ended 2 sessions" in response.get_data(as_text=True)
    assert laptop.session_cookie() is None
    assert phone.get("/me").status_code == 303  # sent to sign in: the phone's session has ended
    assert identity.sessions == {}


def test_sign_out_everywhere_is_a_post_with_csrf(signed_in_staff: PortalBrowser, identity: FakeIdentity) -> None:
    assert signed_in_staff.get("/sign-out-everywhere").status_code == 405
    assert signed_in_staff.post("/sign-out-everywhere", {}, with_csrf=False).status_code == 400
    assert len(identity.sessions) == 1
