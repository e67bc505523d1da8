"""In headless Chromium: the presenter page shows the code and QR code, rotates, and shows nothing personal; a
student's phone that scans the QR code off the screen checks in without typing anything."""

from __future__ import annotations

import io
import re
import time
from collections.abc import Iterator

import pytest
import zxingcpp
from PIL import Image
from playwright.sync_api import Browser, Page, sync_playwright

from tend_testing.canaries import find_in_text
from tend_testing.flows import DEMO_PASSWORD
from tend_testing.running_suite import RunningSuite

pytestmark = [pytest.mark.e2e, pytest.mark.browser, pytest.mark.xdist_group("browser")]

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        try:
            chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        except Exception as exc:
            pytest.fail(f"headless Chromium did not start ({exc}); install it with: make browser", pytrace=False)
        yield chromium
        chromium.close()


def _sign_in(page: Page, portal_url: str, username: str) -> None:
    page.goto(f"{portal_url}/sign-in")
    page.get_by_label("User name").fill(username)
    page.get_by_label("Password").fill(DEMO_PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(f"{portal_url}/")


def _scan_qr(page: Page) -> str:
    """Reads the QR code off a screenshot of the screen, as a phone camera in the room would."""
    image = Image.open(io.BytesIO(page.screenshot()))
    results = zxingcpp.read_barcodes(image)
    assert len(results) == 1, "the presenter screen should show exactly one QR code"
    return str(results[0].text)


def test_presenter_page_rotates_and_a_scanned_code_checks_in(browser: Browser, running_suite: RunningSuite) -> None:
    portal = running_suite.config.portal_url
    lecturer = browser.new_context(viewport={"width": 1280, "height": 720}).new_page()
    _sign_in(lecturer, portal, "lecturer1")
    lecturer.goto(f"{portal}/sessions/new")
    lecturer.get_by_role("radio").first.check()
    lecturer.get_by_label("Room").fill("Main Building LT2")
    lecturer.get_by_role("button", name=re.compile("Open the session")).click()
    lecturer.wait_for_url(re.compile(r".*/present/.+"))

    code = lecturer.locator("#presenter-code")
    first_code = code.inner_text().strip()
    assert re.fullmatch(r"\d{6}", first_code)
    html = lecturer.content()
    assert find_in_text(html, running_suite.canaries, "presenter page") == []
    assert lecturer.locator("a, nav, form").count() == 0

    scanned = _scan_qr(lecturer)
    assert scanned.startswith(f"{running_suite.config.checkin_url}/c/")
    assert scanned.endswith(f"code={first_code}")

    deadline = time.monotonic() + 40
    while code.inner_text().strip() == first_code and time.monotonic() < deadline:
        time.sleep(0.5)
    rotated_code = code.inner_text().strip()
    assert rotated_code != first_code, "the code should rotate"
    scanned = _scan_qr(lecturer)
    assert scanned.endswith(f"code={rotated_code}"), "the QR code should rotate with the digits"

    student = browser.new_context(viewport={"width": 390, "height": 844}, is_mobile=True).new_page()
    _sign_in(student, portal, "student002")
    student.goto(scanned)  # the hand-off to the portal and back needs no typing
    student.wait_for_url(re.compile(re.escape(running_suite.config.checkin_url) + r"/c/.+"))
    assert student.get_by_label("Check-in code").input_value() == rotated_code
    student.get_by_role("button", name="Check in").click()
    assert "You are checked in" in student.locator("main").inner_text()
