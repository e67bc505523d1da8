"""What people do, over HTTP, against the running portal and check-in host: the same requests a browser sends."""

from __future__ import annotations

import html
import re
from dataclasses import dataclass
from urllib.parse import urljoin

import requests

DEMO_PASSWORD = "tend-demo"  # noqa: S105 (the demo university's published shared password)


def form_value(page: str, name: str) -> str:
    match = re.search(rf'name="{re.escape(name)}"[^>]*value="([^"]*)"', page)
    assert match, f"no form field {name!r} on the page"
    return html.unescape(match.group(1))


def form_action(page: str, containing: str) -> str:
    """The action of the page's form whose action contains `containing` (pages also carry a sign-out form)."""
    for match in re.finditer(r'<form[^>]*action="([^"]+)"', page):
        action = html.unescape(match.group(1))
        if containing in action:
            return action
    raise AssertionError(f"no form posting to an address containing {containing!r}")


def sign_in(portal_url: str, username: str) -> requests.Session:
    browser = requests.Session()
    page = browser.get(f"{portal_url}/sign-in", timeout=10)
    response = browser.post(
        f"{portal_url}/sign-in",
        data={
            "csrf_token": form_value(page.text, "csrf_token"),
            "username": username,
            "password": DEMO_PASSWORD,
            "next": "/",
        },
        timeout=10,
    )
    assert response.status_code == 200, response.text
    assert "tend_session" in browser.cookies
    return browser


@dataclass(frozen=True)
class PresentedCode:
    session_id: str
    code: str
    checkin_url: str


def open_session(lecturer: requests.Session, portal_url: str, room: str = "Main Building LT1") -> str:
    """Opens a session for the lecturer's first module run; returns the presenter page's URL."""
    page = lecturer.get(f"{portal_url}/sessions/new", timeout=10)
    assert page.status_code == 200, page.text
    response = lecturer.post(
        f"{portal_url}/sessions",
        data={
            "csrf_token": form_value(page.text, "csrf_token"),
            "module_run_id": form_value(page.text, "module_run_id"),
            "room": room,
        },
        allow_redirects=False,
        timeout=10,
    )
    assert response.status_code == 303, response.text
    return urljoin(portal_url, response.headers["Location"])


def presented_code(lecturer: requests.Session, presenter_url: str) -> PresentedCode:
    response = lecturer.get(f"{presenter_url}/code.json", timeout=10)
    assert response.status_code == 200, response.text
    data = response.json()
    session_id = presenter_url.rstrip("/").rsplit("/", 1)[1]
    return PresentedCode(session_id, data["code"], data["checkin_url"])


def check_in_from_scanned_address(student: requests.Session, checkin_url: str) -> requests.Response:
    """Opens the QR code's address (bounced through the portal for a check-in token), then taps "Check in"."""
    page = student.get(checkin_url, timeout=10)
    if 'id="checkin-token-form"' in page.text:
        handoff = student.post(
            form_action(page.text, "/token"),
            data={"token": form_value(page.text, "token"), "state": form_value(page.text, "state")},
            timeout=10,
        )
        page = handoff
    assert page.status_code == 200, page.text
    return student.post(
        urljoin(page.url, form_action(page.text, "/c/")),
        data={"csrf_token": form_value(page.text, "csrf_token"), "code": form_value(page.text, "code")},
        timeout=10,
    )
