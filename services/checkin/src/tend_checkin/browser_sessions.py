"""Flask's signed-cookie browser sessions, with each cookie's signature checked once per process.

Every check-in carries the browser-session cookie (for its CSRF token), and Flask builds a new serializer, checks the
cookie's HMAC and decodes its JSON on every request. A cookie that passed those checks is remembered with the time
it was signed, and while it is younger than the session lifetime the same cookie gets the same contents without the
work. Cookies that fail are never remembered, so each bad cookie is checked, and refused, every time.
"""

from __future__ import annotations

import copy
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

from flask import Flask, Request
from flask.sessions import SecureCookieSession, SecureCookieSessionInterface
from itsdangerous import BadSignature, URLSafeTimedSerializer

# Immutable values can be shared between requests; anything else is copied, as each request may change its session.
_SHAREABLE = (str, int, float, bool, type(None))


class RememberingCookieSessions(SecureCookieSessionInterface):
    """Thread-safe; at most `max_entries` cookies, least recently used dropped first. One instance per app."""

    def __init__(self, max_entries: int = 50_000, clock: Callable[[], float] = time.time) -> None:
        self._max_entries = max_entries
        self._clock = clock
        self._serializer: URLSafeTimedSerializer | None = None
        # Cookie value -> (signed at, contents).
        self._verified: OrderedDict[str, tuple[float, dict[str, Any]]] = OrderedDict()
        self._lock = threading.Lock()

    def get_signing_serializer(self, app: Flask) -> URLSafeTimedSerializer | None:
        # The keys are the app's configuration, fixed once the app serves requests.
        if self._serializer is None:
            self._serializer = super().get_signing_serializer(app)
        return self._serializer

    def open_session(self, app: Flask, request: Request) -> SecureCookieSession | None:
        if self.get_signing_serializer(app) is None:
            return None
        cookie = request.cookies.get(self.get_cookie_name(app))
        contents = self.read_only_contents(app, cookie) if cookie else None
        return self.session_class(_copy(contents) if contents is not None else {})

    def read_only_contents(self, app: Flask, cookie: str) -> dict[str, Any] | None:
        """The contents of a valid browser-session cookie, or None. Shared between requests: read, never change."""
        serializer = self.get_signing_serializer(app)
        if serializer is None:
            return None
        max_age = int(app.permanent_session_lifetime.total_seconds())
        with self._lock:
            remembered = self._verified.get(cookie)
            if remembered is not None:
                self._verified.move_to_end(cookie)
        if remembered is not None and 0 <= self._clock() - remembered[0] <= max_age:
            return remembered[1]
        try:
            contents, signed_at = serializer.loads(cookie, max_age=max_age, return_timestamp=True)
        except BadSignature:
            return None
        if not isinstance(contents, dict):
            return None
        with self._lock:
            self._verified[cookie] = (signed_at.timestamp(), contents)
            while len(self._verified) > self._max_entries:
                self._verified.popitem(last=False)
        return contents


def _copy(contents: dict[str, Any]) -> dict[str, Any]:
    if all(isinstance(value, _SHAREABLE) for value in contents.values()):
        return dict(contents)
    return copy.deepcopy(contents)
