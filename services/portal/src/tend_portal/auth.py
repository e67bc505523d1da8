"""The signed-in person of a request: the session cookie, its look-up in identity, and the sign-in redirect."""

from __future__ import annotations

import dataclasses
from datetime import datetime

from flask import abort, g, request
from werkzeug.wrappers import Response

from tend_portal.clients import PORTAL_AUDIENCES, Session
from tend_portal.context import portal
from tend_portal.grpc_calls import NotFound, Unauthenticated

SESSION_COOKIE = "tend_session"
_MAX_TOKEN_LENGTH = 512


class SignInRequired(Exception):
    """The request needs a signed-in person and has none (no cookie, or a session that ended)."""


@dataclasses.dataclass(frozen=True)
class CurrentSession:
    token: str
    session: Session


def session_token() -> str | None:
    token = request.cookies.get(SESSION_COOKIE)
    if not token or len(token) > _MAX_TOKEN_LENGTH:
        return None
    return token


def require_session() -> CurrentSession:
    """The current session, looked up in identity once per request; raises SignInRequired when there is none."""
    cached = g.get("current_session")
    if isinstance(cached, CurrentSession):
        return cached
    token = session_token()
    if token is None:
        raise SignInRequired
    try:
        session = portal().identity.get_session(token, PORTAL_AUDIENCES)
    except (NotFound, Unauthenticated):
        raise SignInRequired from None
    current = CurrentSession(token=token, session=session)
    g.current_session = current
    return current


def require_staff() -> CurrentSession:
    current = require_session()
    if not current.session.person.is_staff:
        abort(403, description="This page is for staff. If you are a student, you can check in from the home page.")
    return current


def require_student() -> CurrentSession:
    current = require_session()
    if not current.session.person.is_student:
        abort(403, description="Checking in is for students. Staff accounts cannot check in to teaching sessions.")
    return current


def set_session_cookie(response: Response, token: str, expires_at: datetime | None) -> None:
    response.set_cookie(
        SESSION_COOKIE,
        token,
        expires=expires_at,
        path="/",
        httponly=True,
        samesite="Lax",
        secure=portal().settings.secure_cookies,
    )


def clear_session_cookie(response: Response) -> None:
    response.delete_cookie(
        SESSION_COOKIE, path="/", httponly=True, samesite="Lax", secure=portal().settings.secure_cookies
    )
