"""tend_common.web's security headers and CSRF check, on a bare Flask app."""

from __future__ import annotations

from flask import Flask

from tend_common.web import SECURITY_HEADERS, add_security_headers, csrf_token_matches


def _app() -> Flask:
    app = Flask(__name__)
    add_security_headers(app)

    @app.get("/plain")
    def plain() -> str:
        return "plain"

    @app.get("/cached")
    def cached() -> tuple[str, dict[str, str]]:
        return "cached", {"cache-control": "max-age=60"}

    return app


def test_every_response_gets_the_security_headers() -> None:
    response = _app().test_client().get("/plain")

    for name, value in SECURITY_HEADERS:
        assert response.headers.getlist(name) == [value]


def test_a_header_the_view_set_is_kept_and_the_others_added() -> None:
    response = _app().test_client().get("/cached")

    assert response.headers.getlist("Cache-Control") == ["max-age=60"]
    assert response.headers["X-Frame-Options"] == "DENY"
    assert response.headers["Content-Security-Policy"] == dict(SECURITY_HEADERS)["Content-Security-Policy"]


def test_csrf_token_matches_only_the_sessions_own_token() -> None:
    assert csrf_token_matches({"_csrf": "abc"}, "abc")
    assert not csrf_token_matches({"_csrf": "abc"}, "abd")
    assert not csrf_token_matches({"_csrf": "abc"}, "")
    assert not csrf_token_matches({}, "abc")
    assert not csrf_token_matches({"_csrf": 1}, "1")
    assert not csrf_token_matches({"_csrf": "abc"}, "ab\u00e7"), "not ASCII: refused, not an error"
