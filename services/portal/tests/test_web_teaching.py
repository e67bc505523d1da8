"""Staff open a teaching session and present its code; the presenter screen shows nothing but the code and QR."""

from __future__ import annotations

import re
import uuid
from datetime import datetime
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from services.portal.tests.conftest import FakeCheckin, FakeIdentity, FakePerson, PortalBrowser

STAFF_ASSERTION_PREFIX = "assertion.checkin."
# Calls to identity carry the assertion issued for identity, calls to checkin the one for checkin.
IDENTITY_ASSERTION_PREFIX = "assertion.identity."


def _open_session(browser: PortalBrowser, module_run_id: str = "run-cs101", room: str = "Main Building LT1") -> str:
    response = browser.post("/sessions", {"module_run_id": module_run_id, "room": room})
    assert response.status_code == 303, response.get_data(as_text=True)
    location = response.headers["Location"]
    assert location.startswith("/present/")
    return location.removeprefix("/present/")


def test_staff_see_their_module_runs(signed_in_staff: PortalBrowser, staff: FakePerson, identity: FakeIdentity) -> None:
    response = signed_in_staff.get("/sessions/new")
    page = response.get_data(as_text=True)

    assert response.status_code == 200
    assert "CS101" in page
    assert "CS102" in page
    assert 'value="run-cs101"' in page
    assert '<label for="room">' in page
    assert identity.list_assertions == [f"{IDENTITY_ASSERTION_PREFIX}{staff.person_id}"]


def test_students_cannot_start_a_session(signed_in_student: PortalBrowser, checkin: FakeCheckin) -> None:
    assert signed_in_student.get("/sessions/new").status_code == 403
    assert signed_in_student.post("/sessions", {"module_run_id": "run-cs101", "room": "LT1"}).status_code == 403
    assert checkin.opened == []


def test_opening_a_session_sends_the_staff_assertion_to_checkin(
    signed_in_staff: PortalBrowser, staff: FakePerson, checkin: FakeCheckin
) -> None:
    session_id = _open_session(signed_in_staff, room="  Main   Building LT1 ")

    assert len(checkin.opened) == 1
    opened = checkin.opened[0]
    assert opened.actor_assertion == f"{STAFF_ASSERTION_PREFIX}{staff.person_id}"
    assert opened.module_run_id == "run-cs101"
    assert opened.room == "Main Building LT1"
    assert session_id in checkin.sessions


def test_missing_room_and_module_are_explained_without_calling_checkin(
    signed_in_staff: PortalBrowser, checkin: FakeCheckin
) -> None:
    response = signed_in_staff.post("/sessions", {"module_run_id": "", "room": " "})
    page = response.get_data(as_text=True)

    assert response.status_code == 400
    assert 'role="alert"' in page
    assert "Choose the module you are teaching" in page
    assert "Enter the room" in page
    assert checkin.opened == []


def test_checkin_refusal_is_a_plain_message_without_remote_details(
    signed_in_staff: PortalBrowser, checkin: FakeCheckin, staff: FakePerson
) -> None:
    response = signed_in_staff.post("/sessions", {"module_run_id": "run-someone-elses", "room": "LT1"})
    page = response.get_data(as_text=True)

    assert response.status_code == 403
    assert "You do not have permission to do that." in page
    assert staff.display_name not in page  # the fake put the name in its status details


def test_presenter_page_shows_the_code_and_qr_and_nothing_else(
    signed_in_staff: PortalBrowser, checkin: FakeCheckin, staff: FakePerson
) -> None:
    session_id = _open_session(signed_in_staff)

    response = signed_in_staff.get(f"/present/{session_id}")
    page = response.get_data(as_text=True)

    assert response.status_code == 200
    assert checkin.code in page
    assert "<svg" in page
    assert 'class="qr-code"' in page
    # Nothing to follow and nothing personal: no links, no navigation, no account menu, no names or e-mails.
    assert "<a " not in page
    assert "<nav" not in page
    assert "<form" not in page
    assert "Sign out" not in page
    assert staff.display_name not in page
    assert "canary" not in page.lower()
    assert "@" not in page
    assert "Main Building" not in page  # not even the room
    # Without JavaScript the page refreshes itself; the script is a static file.
    assert re.search(r'<noscript><meta http-equiv="refresh" content="\d+"></noscript>', page)
    assert '<script src="/static/present.js" defer></script>' in page
    assert "<script>" not in page


def test_code_json_gives_the_current_code_address_rotation_and_qr(
    signed_in_staff: PortalBrowser, checkin: FakeCheckin
) -> None:
    session_id = _open_session(signed_in_staff)

    response = signed_in_staff.get(f"/present/{session_id}/code.json")
    body = response.get_json()

    assert response.status_code == 200
    assert body["code"] == checkin.code
    assert body["checkin_url"] == f"{checkin.checkin_base_url}/c/{session_id}?code={checkin.code}"
    assert datetime.fromisoformat(body["rotates_at"].replace("Z", "+00:00"))
    assert 1 <= body["refresh_in_seconds"] <= 15
    assert body["qr_svg"].startswith("<svg")
    assert set(body) == {"code", "checkin_url", "rotates_at", "refresh_in_seconds", "qr_svg"}


def test_code_json_without_a_session_is_401_json(browser: PortalBrowser) -> None:
    response = browser.get(f"/present/{uuid.uuid4()}/code.json")

    assert response.status_code == 401
    assert response.get_json() == {"error": "signed_out"}


def test_unknown_and_malformed_sessions_are_not_found(signed_in_staff: PortalBrowser) -> None:
    assert signed_in_staff.get(f"/present/{uuid.uuid4()}").status_code == 404
    assert signed_in_staff.get("/present/not-a-uuid").status_code == 404
    assert signed_in_staff.get(f"/present/{uuid.uuid4()}/code.json").get_json() == {"error": "not_found"}


def test_a_code_address_off_the_checkin_host_is_never_put_in_a_qr_code(
    signed_in_staff: PortalBrowser, checkin: FakeCheckin
) -> None:
    session_id = _open_session(signed_in_staff)
    checkin.checkin_url_override = f"https://evil.example/c/{session_id}?code={checkin.code}"

    response = signed_in_staff.get(f"/present/{session_id}")

    assert response.status_code == 502
    assert "<svg" not in response.get_data(as_text=True)


def test_students_cannot_present(signed_in_student: PortalBrowser) -> None:
    assert signed_in_student.get(f"/present/{uuid.uuid4()}").status_code == 403
