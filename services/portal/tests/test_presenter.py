"""The presenter screen's content, as pure functions."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from tend_portal.clients import PresenterCode
from tend_portal.presenter import UnexpectedPresenterCode, presenter_screen, qr_svg, seconds_until

BASE = "https://checkin.example.ac.uk"
NOW = datetime(2026, 10, 5, 9, 0, 3, tzinfo=UTC)


def _code(code: str = "012345", url: str = f"{BASE}/c/s1?code=012345") -> PresenterCode:
    return PresenterCode(code=code, checkin_url=url, rotates_at=NOW + timedelta(seconds=12), step_seconds=15)


def test_screen_carries_code_address_and_qr() -> None:
    screen = presenter_screen(_code(), BASE, NOW)

    assert screen.code == "012345"
    assert screen.refresh_in_seconds == 12
    assert screen.qr_svg.startswith("<svg")
    assert screen.as_json()["rotates_at"] == "2026-10-05T09:00:15Z"


def test_qr_svg_is_opaque_and_scalable() -> None:
    svg = qr_svg(f"{BASE}/c/s1?code=012345")

    assert 'fill="#fff"' in svg  # a light background, so a projected code scans
    assert "width=" not in svg.split(">")[0]  # sized by CSS


FULL_WIDTH_DIGITS = "\uff11\uff12\uff13\uff14\uff15\uff16"


@pytest.mark.parametrize("code", ["", "12ab56", FULL_WIDTH_DIGITS, "1" * 11])
def test_a_non_numeric_code_is_refused(code: str) -> None:
    with pytest.raises(UnexpectedPresenterCode):
        presenter_screen(_code(code=code), BASE, NOW)


def test_an_address_off_the_checkin_host_is_refused() -> None:
    with pytest.raises(UnexpectedPresenterCode):
        presenter_screen(_code(url="https://evil.example/c/s1?code=012345"), BASE, NOW)


@pytest.mark.parametrize(("offset", "expected"), [(12.2, 13), (0, 1), (-30, 1), (600, 15)])
def test_refresh_is_between_one_second_and_one_step(offset: float, expected: int) -> None:
    assert seconds_until(NOW + timedelta(seconds=offset), NOW, 15) == expected
