"""The check-in POST without Flask's per-request machinery, for the peak at the start of the hour.

Flask's request context, URL matching, form and cookie objects, after-request hooks and response object cost about
as much CPU as the check-in itself. This WSGI middleware, in front of the Flask app, takes a `POST /c/<session id>`
only when it can see that the Flask view would record it: a form of the expected type and size, the browser
session's CSRF token, a valid check-in token, a known session and a well-formed code. It records the check-in with
the same recorder, and answers a successful one with the prerendered success page and the headers Flask would
send. Everything else goes to Flask untouched (the body put back for it to read): a request the lean path does not
take, and a recorded check-in whose answer is not the success page, which the view answers from the recorded
result (views.DECIDED_KEY) without recording it again. So every rule and every page stays in one place, the views.
"""

from __future__ import annotations

import io
import uuid
from collections.abc import Iterable
from typing import TYPE_CHECKING
from urllib.parse import parse_qsl

from flask import Flask
from werkzeug.http import parse_cookie

from tend_checkin import codes, views
from tend_checkin.browser_sessions import RememberingCookieSessions
from tend_checkin.handoff import COOKIE_NAME, checkin_token_claims
from tend_checkin.networks import client_address
from tend_checkin.web_context import WebContext
from tend_common.web import CSRF_FORM_FIELD, SECURITY_HEADERS, csrf_token_matches

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment

_PATH_PREFIX = "/c/"
_FORM_TYPE = "application/x-www-form-urlencoded"
# What Flask sends with the success page: its content type, and Vary because the browser session was read (for the
# CSRF token); the security headers follow.
_DONE_HEADERS = (("Content-Type", "text/html; charset=utf-8"),)
_DONE_TRAILING_HEADERS = (("Vary", "Cookie"), *SECURITY_HEADERS)


class LeanCheckin:
    """WSGI middleware for `app`; install as `app.wsgi_app = LeanCheckin(app, context, app.wsgi_app)`."""

    def __init__(self, app: Flask, context: WebContext, flask_app: WSGIApplication) -> None:
        if not isinstance(app.session_interface, RememberingCookieSessions):
            raise TypeError("the lean check-in path reads browser sessions through RememberingCookieSessions")
        self._app = app
        self._context = context
        self._flask_app = flask_app
        self._browser_sessions = app.session_interface
        self._session_cookie = str(app.config["SESSION_COOKIE_NAME"])
        self._max_bytes = int(app.config["MAX_CONTENT_LENGTH"])

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        if environ.get("REQUEST_METHOD") == "POST" and environ.get("PATH_INFO", "").startswith(_PATH_PREFIX):
            page = self._check_in(environ)
            if page is not None:
                start_response("200 OK", [*_DONE_HEADERS, ("Content-Length", str(len(page))), *_DONE_TRAILING_HEADERS])
                return [page]
        return self._flask_app(environ, start_response)

    def _check_in(self, environ: WSGIEnvironment) -> bytes | None:
        """The success page of a check-in recorded here, or None for Flask to answer (with the recorded result in
        `environ` if there is one)."""
        session_id = _session_id(environ["PATH_INFO"][len(_PATH_PREFIX) :])
        length = self._content_length(environ)
        if session_id is None or length is None or not _is_form(environ.get("CONTENT_TYPE", "")):
            return None
        body = environ["wsgi.input"].read(length)
        # Flask reads the body again if the request goes on to it.
        environ["wsgi.input"] = io.BytesIO(body)
        if len(body) != length:
            return None
        decided = self._record(environ, session_id, body)
        if decided is None:
            return None
        context = self._context
        outcome = decided.outcome
        if isinstance(outcome, Exception) or outcome.status not in views.DONE or not context.done_page.is_ready:
            environ[views.DECIDED_KEY] = decided
            return None
        return views.done_page(context, decided.session, outcome).encode()

    def _record(self, environ: WSGIEnvironment, session_id: uuid.UUID, body: bytes) -> views.Decided | None:
        form = _form_fields(body)
        if form is None:
            return None
        cookies = parse_cookie(environ.get("HTTP_COOKIE"))
        browser_cookie = cookies.get(self._session_cookie)
        browser_session = (
            self._browser_sessions.read_only_contents(self._app, browser_cookie) if browser_cookie else None
        )
        if browser_session is None or not csrf_token_matches(browser_session, form.get(CSRF_FORM_FIELD, "")):
            return None
        context = self._context
        code = form.get("code", "").strip()
        if not codes.is_well_formed(code, context.settings.code_digits):
            return None
        try:
            claims = checkin_token_claims(context.verifier, cookies.get(COOKIE_NAME))
            session = context.sessions.get(session_id)
        except Exception:  # the view meets the same failure and answers it with its error handlers
            return None
        if claims is None or session is None:
            return None
        # Only a session limited to campus networks needs the student's address.
        address = (
            client_address(environ.get("REMOTE_ADDR"), environ.get("HTTP_X_FORWARDED_FOR"), context.trusted_proxies)
            if session.networks
            else None
        )
        try:
            result = context.recorder.record(session, str(claims["sub"]), code, context.clock(), address)
        except Exception as exc:  # raised again in the view, for the app's error handlers
            return views.Decided(session, code, exc)
        return views.Decided(session, code, result)

    def _content_length(self, environ: WSGIEnvironment) -> int | None:
        text = environ.get("CONTENT_LENGTH", "")
        if not text.isdigit():
            return None
        length = int(text)
        return length if length <= self._max_bytes else None


def _session_id(segment: str) -> uuid.UUID | None:
    if "/" in segment or not segment.isascii():
        return None
    try:
        return uuid.UUID(segment)
    except ValueError:
        return None


def _is_form(content_type: str) -> bool:
    return content_type.partition(";")[0].strip().lower() == _FORM_TYPE


def _form_fields(body: bytes) -> dict[str, str] | None:
    """Each field's first value, as werkzeug's form gives it for an ASCII body; None for anything else."""
    if not body.isascii():
        return None
    fields: dict[str, str] = {}
    for name, value in parse_qsl(body.decode("ascii"), keep_blank_values=True):
        fields.setdefault(name, value)
    return fields
