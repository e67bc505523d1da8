"""Flask plumbing shared by the web processes: health and metrics routes, security headers, CSRF protection."""

from __future__ import annotations

import hmac
import logging
import secrets
from collections.abc import Callable, Mapping
from typing import Any

from flask import Flask, Response, abort, jsonify, request, session

from tend_common.metrics import metrics_response

log = logging.getLogger(__name__)

ReadinessCheck = Callable[[], None]

_CSRF_SESSION_KEY = "_csrf"
CSRF_FORM_FIELD = "csrf_token"


def add_health_routes(app: Flask, checks: Mapping[str, ReadinessCheck]) -> None:
    """/healthz: the process is up. /readyz: each dependency answers. /metrics: Prometheus."""

    @app.get("/healthz")
    def healthz() -> Response:
        return jsonify(status="ok")

    @app.get("/readyz")
    def readyz() -> tuple[Response, int]:
        failing = []
        for name, check in checks.items():
            try:
                check()
            except Exception:
                failing.append(name)
        if failing:
            return jsonify(status="unavailable", failing=failing), 503
        return jsonify(status="ok"), 200

    @app.get("/metrics")
    def metrics() -> Response:
        return metrics_response()


# Strict defaults: nothing from other origins, no framing, no referrer, and no caching of any page.
SECURITY_HEADERS: tuple[tuple[str, str], ...] = (
    (
        "Content-Security-Policy",
        "default-src 'self'; img-src 'self' data:; object-src 'none'; base-uri 'none'; frame-ancestors 'none';"
        " form-action 'self'",
    ),
    ("X-Content-Type-Options", "nosniff"),
    ("Referrer-Policy", "no-referrer"),
    ("X-Frame-Options", "DENY"),
    ("Cache-Control", "no-store"),
)
_SECURITY_HEADER_NAMES = frozenset(name.lower() for name, _ in SECURITY_HEADERS)


def add_security_headers(app: Flask) -> None:
    """Adds SECURITY_HEADERS to every response, except any a view set itself."""

    @app.after_request
    def secure(response: Response) -> Response:
        headers = response.headers
        # One pass over the response's few headers instead of a case-insensitive lookup per default: this runs on
        # every request.
        if _SECURITY_HEADER_NAMES.isdisjoint([name.lower() for name, _ in headers]):
            headers.extend(SECURITY_HEADERS)
        else:
            for name, value in SECURITY_HEADERS:
                headers.setdefault(name, value)
        return response


def csrf_token() -> str:
    """The CSRF token of the current browser session, created on first use; put it in every form."""
    token = session.get(_CSRF_SESSION_KEY)
    if not isinstance(token, str):
        token = secrets.token_urlsafe(32)
        session[_CSRF_SESSION_KEY] = token
    return token


def protect_against_csrf(app: Flask, exempt: Callable[[], bool] = lambda: False) -> None:
    """Refuses any state-changing request whose form does not carry the session's CSRF token."""
    app.jinja_env.globals["csrf_token"] = csrf_token

    @app.before_request
    def check_csrf() -> None:
        if request.method in {"GET", "HEAD", "OPTIONS"} or exempt():
            return
        if not csrf_token_matches(session, request.form.get(CSRF_FORM_FIELD, "")):
            abort(400, description="This form has expired. Go back, reload the page and try again.")


def csrf_token_matches(browser_session: Mapping[str, Any], given: str) -> bool:
    """True if `given` is the CSRF token of `browser_session` (the decoded browser-session cookie)."""
    expected = browser_session.get(_CSRF_SESSION_KEY)
    if not isinstance(expected, str) or not given.isascii():
        return False
    return hmac.compare_digest(expected, given)
