"""The landing preference: kept by identity on the server, read after sign-in, changed on the preferences page;
the safe page (actions only, nothing personal) unless the person chose otherwise or identity cannot say."""

from __future__ import annotations

from typing import TYPE_CHECKING

from flask import Flask

from services.portal.tests.conftest import STAFF_NAME, PortalBrowser

if TYPE_CHECKING:
    from services.portal.tests.conftest import FakeIdentity, FakePerson


def test_the_landing_page_shows_nothing_personal_by_default(signed_in_staff: PortalBrowser) -> None:
    page = signed_in_staff.get("/").get_data(as_text=True)

    assert "What would you like to do?" in page
    assert "Canary" not in page
    assert "Choose what this page shows" in page


def test_choosing_the_overview_is_stored_by_identity_and_follows_the_person(
    app: Flask, signed_in_staff: PortalBrowser, staff: FakePerson, identity: FakeIdentity
) -> None:
    saved = signed_in_staff.post("/preferences", {"landing_page": "overview"})

    assert saved.status_code == 303
    assert identity.landing_pages == {staff.person_id: 2}
    assert STAFF_NAME in signed_in_staff.get("/").get_data(as_text=True)
    # A fresh browser (no cookies from the first) shows the same: the preference is not in the browser.
    fresh = PortalBrowser(app.test_client())
    fresh.sign_in(staff)
    assert STAFF_NAME in fresh.get("/").get_data(as_text=True)
    assert "tend_landing" not in str(saved.headers)


def test_choosing_actions_again_hides_personal_data(signed_in_staff: PortalBrowser) -> None:
    signed_in_staff.post("/preferences", {"landing_page": "overview"})
    signed_in_staff.post("/preferences", {"landing_page": "actions"})

    page = signed_in_staff.get("/").get_data(as_text=True)
    assert STAFF_NAME not in page
    assert 'value="actions"\n             checked' in signed_in_staff.get("/preferences").get_data(as_text=True)


def test_an_unknown_choice_is_refused_and_changes_nothing(
    signed_in_staff: PortalBrowser, identity: FakeIdentity
) -> None:
    response = signed_in_staff.post("/preferences", {"landing_page": "everything"})

    assert response.status_code == 400
    assert "Choose one of the two home pages" in response.get_data(as_text=True)
    assert identity.landing_pages == {}


def test_the_form_needs_its_csrf_token(signed_in_staff: PortalBrowser, identity: FakeIdentity) -> None:
    response = signed_in_staff.post("/preferences", {"landing_page": "overview"}, with_csrf=False)

    assert response.status_code == 400
    assert identity.landing_pages == {}


def test_when_identity_cannot_say_the_safe_page_is_shown(
    signed_in_staff: PortalBrowser, identity: FakeIdentity
) -> None:
    signed_in_staff.post("/preferences", {"landing_page": "overview"})
    identity.preferences_unavailable = True

    page = signed_in_staff.get("/").get_data(as_text=True)

    assert "What would you like to do?" in page
    assert STAFF_NAME not in page


def test_preferences_need_a_session(browser: PortalBrowser) -> None:
    response = browser.get("/preferences")

    assert response.status_code == 303
    assert response.headers["Location"].startswith("/sign-in")
