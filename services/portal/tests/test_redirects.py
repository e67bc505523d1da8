"""Which addresses the portal sends a browser on to."""

from __future__ import annotations

import pytest

from tend_portal.redirects import is_checkin_page, local_path

BASE = "https://checkin.example.ac.uk"


@pytest.mark.parametrize("path", ["/", "/me", "/sessions/new", "/checkin-token?next=x&state=y"])
def test_local_paths_are_kept(path: str) -> None:
    assert local_path(path) == path


@pytest.mark.parametrize(
    "candidate",
    [
        None,
        "",
        "me",
        "//evil.example/",
        "/\\evil.example",
        "https://evil.example/",
        "/\tx",
        "javascript:alert(1)",
        "/" + "a" * 3000,
    ],
)
def test_anything_else_falls_back_to_home(candidate: str | None) -> None:
    assert local_path(candidate) == "/"


@pytest.mark.parametrize("url", [f"{BASE}/c/abc", f"{BASE}/c/abc?code=123456"])
def test_checkin_pages_are_recognised(url: str) -> None:
    assert is_checkin_page(url, BASE)


@pytest.mark.parametrize(
    "url",
    [
        None,
        f"{BASE}/token",
        f"{BASE}/c",
        f"{BASE}.evil.example/c/abc",
        "https://checkin.example.ac.uk@evil.example/c/abc",
        f"{BASE}/c/../token",
        f"{BASE}/c/abc\\@evil",
        f"{BASE}/c/ab c",
        "https://evil.example/c/abc",
    ],
)
def test_other_addresses_are_not_checkin_pages(url: str | None) -> None:
    assert not is_checkin_page(url, BASE)
