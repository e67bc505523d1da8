"""Signing in and out, the landing page with nothing personal on it, and the person's own details."""

from __future__ import annotations

from typing import TYPE_CHECKING
from urllib.parse import parse_qs, urlsplit

from flask import Flask

from tend_portal.settings import Settings
from tend_portal.web import create_app

if TYPE_CHECKING:
    from services.portal.tests.conftest import FakeIdentity, FakePerson, PortalBrowser


def test_sign_in_sets_an_http_only_lax_session_cookie(browser: PortalBrowser, staff: FakePerson) -> None:
    response = browser.sign_in(staff)

    assert response.status_code == 303
    assert response.headers["Location"] == "/"
    cookie = next(h for h in response.headers.getlist("Set-Cookie") if h.startswith("tend_session="))
    assert "HttpOnly" in cookie
    assert "SameSite=Lax" in cookie
    assert "Secure" not in cookie  # the public address in these tests is http


def test_session_cookie_is_secure_when_the_portal_is_served_over_https(settings: Settings, staff: FakePerson) -> None:
    from dataclasses import replace

    app = create_app(replace(settings, public_base_url="https://portal.example.ac.uk"))
    client = app.test_client()
    page = client.get("/sign-in", base_url="https://portal.example.ac.uk")
    token = page.get_data(as_text=True).split('name="csrf_token" value="')[1].split('"')[0]
    response = client.post(
        "/sign-in",
        data={"username": staff.username, "password": "correct horse battery staple", "csrf_token": token},
        base_url="https://portal.example.ac.uk",
    )

    cookie = next(h for h in response.headers.getlist("Set-Cookie") if h.startswith("tend_session="))
    assert "Secure" in cookie


def test_wrong_password_is_refused_with_a_message_that_echoes_nothing(
    browser: PortalBrowser, staff: FakePerson, identity: FakeIdentity
) -> None:
    response = browser.sign_in(staff, password="wrong")

    page = response.get_data(as_text=True)
    assert response.status_code == 401
    assert 'role="alert"' in page
    assert "The user name or password is not right" in page
    assert "canary" not in page.lower()  # the fake's status details carry an e-mail canary
    assert browser.session_cookie() is None
    assert identity.sessions == {}


def test_empty_sign_in_form_asks_for_both_fields(browser: PortalBrowser) -> None:
    response = browser.post("/sign-in", {"username": "", "password": ""})

    assert response.status_code == 400
    assert "Enter your user name and your password" in response.get_data(as_text=True)


def test_sign_in_returns_to_a_local_next_page_only(browser: PortalBrowser, staff: FakePerson) -> None:
    local = browser.post(
        "/sign-in", {"username": staff.username, "password": "correct horse battery staple", "next": "/sessions/new"}
    )
    assert local.headers["Location"] == "/sessions/new"

    foreign = browser.post(
        "/sign-in",
        {"username": staff.username, "password": "correct horse battery staple", "next": "https://evil.example/"},
    )
    assert foreign.headers["Location"] == "/"


def test_pages_without_a_session_redirect_to_sign_in_with_a_local_next(browser: PortalBrowser) -> None:
    response = browser.get("/me")

    assert response.status_code == 303
    location = urlsplit(response.headers["Location"])
    assert location.path == "/sign-in"
    assert parse_qs(location.query)["next"] == ["/me"]


def test_an_unknown_session_cookie_redirects_to_sign_in_and_is_cleared(browser: PortalBrowser) -> None:
    browser.client.set_cookie("tend_session", "no-such-session")

    response = browser.get("/")

    assert response.status_code == 303
    assert urlsplit(response.headers["Location"]).path == "/sign-in"
    assert browser.session_cookie() is None


def test_landing_page_shows_nothing_personal(signed_in_staff: PortalBrowser, staff: FakePerson) -> None:
    page = signed_in_staff.get("/").get_data(as_text=True)

    assert staff.display_name not in page
    assert "Canary" not in page
    assert "CS101" not in page  # no module list on arrival either
    assert "Start a teaching session" in page
    assert 'href="/me"' in page
    assert "Show my details" in page


def test_students_landing_page_offers_check_in_and_nothing_personal(
    signed_in_student: PortalBrowser, student: FakePerson
) -> None:
    page = signed_in_student.get("/").get_data(as_text=True)

    assert student.display_name not in page
    assert "Check in" in page
    assert "Start a teaching session" not in page


def test_my_details_shows_the_name_and_roles(signed_in_staff: PortalBrowser, staff: FakePerson) -> None:
    page = signed_in_staff.get("/me").get_data(as_text=True)

    assert staff.display_name in page
    assert "lecturer" in page
    assert "personal tutor" in page


def test_portal_asks_identity_for_an_assertion_for_each_service_it_acts_towards(
    signed_in_staff: PortalBrowser, identity: FakeIdentity
) -> None:
    signed_in_staff.get("/")

    assert sorted(identity.audiences_asked[-1]) == ["audit", "checkin", "identity", "indicators", "notify"]


def test_sign_out_revokes_the_session(signed_in_staff: PortalBrowser, identity: FakeIdentity) -> None:
    token = signed_in_staff.session_cookie()
    assert token is not None

    response = signed_in_staff.post("/sign-out", {})

    assert response.status_code == 303
    assert identity.revoked == [token]
    assert signed_in_staff.session_cookie() is None
    # The revoked token is refused even if a browser kept it.
    signed_in_staff.client.set_cookie("tend_session", token)
    assert signed_in_staff.get("/").status_code == 303


def test_a_post_without_the_csrf_token_is_refused(signed_in_staff: PortalBrowser, identity: FakeIdentity) -> None:
    response = signed_in_staff.post("/sign-out", {}, with_csrf=False)

    assert response.status_code == 400
    assert identity.revoked == []


def test_a_post_with_another_browsers_csrf_token_is_refused(app: Flask, browser: PortalBrowser) -> None:
    browser.csrf_token()  # this browser has a CSRF token of its own
    other = app.test_client()
    foreign_token = other.get("/sign-in").get_data(as_text=True).split('name="csrf_token" value="')[1].split('"')[0]

    response = browser.client.post("/sign-in", data={"username": "x", "password": "y", "csrf_token": foreign_token})

    assert response.status_code == 400


def test_pages_carry_the_security_headers_and_accessible_layout(browser: PortalBrowser) -> None:
    response = browser.get("/sign-in")
    page = response.get_data(as_text=True)

    assert "form-action 'self'" in response.headers["Content-Security-Policy"]
    assert "script-src" not in response.headers["Content-Security-Policy"]  # default-src 'self': no inline scripts
    assert response.headers["Cache-Control"] == "no-store"
    assert '<html lang="en-GB">' in page
    assert 'href="#main"' in page
    assert '<label for="username">' in page
    assert '<label for="password">' in page
    assert "<script>" not in page


def test_static_css_is_served(browser: PortalBrowser) -> None:
    with browser.get("/static/portal.css") as response:
        assert response.status_code == 200
        assert ":focus-visible" in response.get_data(as_text=True)
