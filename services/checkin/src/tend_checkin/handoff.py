"""Getting a student's check-in token from the portal into this host's cookie.

A browser without a valid token is sent to the portal with a one-time `state` nonce kept in its own (signed)
browser session here. The portal, once the student is signed in, posts the token and the nonce back. Only a nonce
this browser was given is accepted: otherwise an attacker could post their own token into a victim's browser and
have the victim's check-ins credited to the attacker (a login CSRF).
"""

from __future__ import annotations

import hmac
import secrets
from typing import Any
from urllib.parse import urlencode

from flask import request, session
from werkzeug.wrappers import Response

from tend_checkin.access import is_checkin_token
from tend_checkin.token_cache import Verifier
from tend_common.tokens import InvalidToken

# Holds the check-in token identity signed: HttpOnly, so page scripts (there are none) could never read it.
COOKIE_NAME = "tend_checkin_token"
_PENDING_KEY = "handoffs"
# A student may open a few check-in links before finishing one hand-off; older ones are dropped.
_MAX_PENDING = 5


def begin_handoff(next_path: str) -> str:
    """Remembers where to return after the hand-off; returns the state nonce to send to the portal."""
    if not is_local_path(next_path):
        raise ValueError("next must be a path on this host")
    nonce = secrets.token_urlsafe(32)
    pending = [p for p in session.get(_PENDING_KEY, []) if isinstance(p, list) and len(p) == 2]
    session[_PENDING_KEY] = [*pending[-(_MAX_PENDING - 1) :], [nonce, next_path]]
    return nonce


def complete_handoff(state: str) -> str | None:
    """The path stored with `state` if this browser was given that nonce, else None. Each nonce works once."""
    pending = [p for p in session.get(_PENDING_KEY, []) if isinstance(p, list) and len(p) == 2]
    found: str | None = None
    remaining = []
    for nonce, next_path in pending:
        if state and hmac.compare_digest(str(nonce).encode(), state.encode()):
            found = str(next_path)
        else:
            remaining.append([nonce, next_path])
    if found is not None:
        session[_PENDING_KEY] = remaining
    return found if found is not None and is_local_path(found) else None


def is_local_path(path: str) -> bool:
    """An absolute path on this host: not another host ("//evil", "/\\evil"), not a scheme."""
    path_part = path.split("?", maxsplit=1)[0]
    return path.startswith("/") and not path.startswith("//") and "\\" not in path and ":" not in path_part


def portal_handoff_url(portal_base_url: str, public_url: str, state: str) -> str:
    return f"{portal_base_url}/checkin-token?{urlencode({'next': public_url, 'state': state})}"


def checkin_token_claims(verifier: Verifier, token: str | None) -> dict[str, Any] | None:
    """The claims of `token` if it is a valid check-in token, else None.

    Raises grpc.RpcError if identity's keys are needed and cannot be fetched.
    """
    if not token:
        return None
    try:
        claims = verifier.verify(token)
    except InvalidToken:
        return None
    return claims if is_checkin_token(claims) else None


def cookie_token_claims(verifier: Verifier) -> dict[str, Any] | None:
    """The claims of the browser's check-in token cookie, or None if it has none or it is not valid."""
    return checkin_token_claims(verifier, request.cookies.get(COOKIE_NAME))


def set_token_cookie(response: Response, token: str, max_age: int, secure: bool) -> None:
    response.set_cookie(COOKIE_NAME, token, max_age=max_age, path="/", secure=secure, httponly=True, samesite="Lax")
