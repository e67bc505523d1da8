"""Flask plumbing shared by the web processes: health and metrics routes, security headers, CSRF protection."""

from __future__ import annotations

import hmac
import logging
import secrets
from collections.abc import Callable, Mapping

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


def add_security_headers(app: Flask) -> None:
    """Strict defaults: nothing from other origins, no framing, no referrer, and no caching of any page."""

    @app.after_request
    def secure(response: Response) -> Response:
        response.headers.setdefault(
            "Content-Security-Policy",
            "default-src 'self'; img-src 'self' data:; object-src 'none'; base-uri 'none'; frame-ancestors 'none';"
            " form-action 'self'",
        )
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("Referrer-Policy", "no-referrer")
        response.headers.setdefault("X-Frame-Options", "DENY")
        response.headers.setdefault("Cache-Control", "no-store")
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
        expected = session.get(_CSRF_SESSION_KEY)
        given = request.form.get(CSRF_FORM_FIELD, "")
        if not isinstance(expected, str) or not hmac.compare_digest(expected, given):
            abort(400, description="This form has expired. Go back, reload the page and try again.")
