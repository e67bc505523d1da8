"""The check-in token hand-off: students only, towards the check-in host only, by a form the browser posts."""

from __future__ import annotations

import html
import re
import uuid
from typing import TYPE_CHECKING
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest

if TYPE_CHECKING:
    from services.portal.tests.conftest import FakeCheckin, FakeIdentity, PortalBrowser

STATE = "nonce_0123456789abcdef"


def _handoff_path(next_url: str, state: str = STATE) -> str:
    return "/checkin-token?" + urlencode({"next": next_url, "state": state})


def _checkin_page(checkin: FakeCheckin) -> str:
    return f"{checkin.checkin_base_url}/c/{uuid.uuid4()}?code=123456"


def test_a_student_gets_a_form_posting_token_and_state_to_the_checkin_host(
    signed_in_student: PortalBrowser, identity: FakeIdentity, checkin: FakeCheckin
) -> None:
    response = signed_in_student.get(_handoff_path(_checkin_page(checkin)))
    page = response.get_data(as_text=True)

    assert response.status_code == 200
    assert f'action="{checkin.checkin_base_url}/token"' in page
    assert 'method="post"' in page
    assert identity.issued_tokens
    assert f'name="token" value="{html.escape(identity.issued_tokens[-1])}"' in page
    assert f'name="state" value="{STATE}"' in page
    assert re.search(r'<button type="submit"[^>]*>Continue</button>', page)
    assert '<script src="/static/checkin-token.js" defer></script>' in page
    assert "<script>" not in page
    # Only this page may post a form to the check-in host.
    assert f"form-action 'self' {checkin.checkin_base_url}" in response.headers["Content-Security-Policy"]


def test_other_pages_may_not_post_forms_to_the_checkin_host(
    signed_in_student: PortalBrowser, checkin: FakeCheckin
) -> None:
    response = signed_in_student.get("/")

    assert checkin.checkin_base_url not in response.headers["Content-Security-Policy"]


@pytest.mark.parametrize(
    "next_url",
    [
        "https://evil.example/c/x",
        "https://checkin.example.ac.uk.evil.example/c/x",
        "https://checkin.example.ac.uk@evil.example/c/x",
        "http://checkin.example.ac.uk/c/x",
        "https://checkin.example.ac.uk/token",
        "https://checkin.example.ac.uk/c/../admin",
        "/c/x",
        "",
    ],
)
def test_a_foreign_next_is_refused(signed_in_student: PortalBrowser, identity: FakeIdentity, next_url: str) -> None:
    response = signed_in_student.get(_handoff_path(next_url))

    assert response.status_code == 400
    assert identity.issued_tokens == []


def test_a_missing_or_malformed_state_is_refused(
    signed_in_student: PortalBrowser, identity: FakeIdentity, checkin: FakeCheckin
) -> None:
    assert signed_in_student.get(_handoff_path(_checkin_page(checkin), state="")).status_code == 400
    assert signed_in_student.get(_handoff_path(_checkin_page(checkin), state='"><b>x')).status_code == 400
    assert identity.issued_tokens == []


def test_staff_are_told_check_in_is_for_students(
    signed_in_staff: PortalBrowser, identity: FakeIdentity, checkin: FakeCheckin
) -> None:
    response = signed_in_staff.get(_handoff_path(_checkin_page(checkin)))

    assert response.status_code == 403
    assert "Checking in is for students" in response.get_data(as_text=True)
    assert identity.issued_tokens == []


def test_a_signed_out_student_signs_in_first_and_comes_back(browser: PortalBrowser, checkin: FakeCheckin) -> None:
    path = _handoff_path(_checkin_page(checkin))

    response = browser.get(path)

    assert response.status_code == 303
    location = urlsplit(response.headers["Location"])
    assert location.path == "/sign-in"
    assert parse_qs(location.query)["next"] == [path]
