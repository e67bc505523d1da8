"""Signing in with the institution's OpenID Connect provider, and signing out everywhere.

The button shows only when the portal is told the institution's name (TEND_PORTAL_OIDC_INSTITUTION_NAME), which the
operator sets when identity has a provider configured. Pressing it is a POST (it makes identity keep a pending
sign-in); identity answers with the provider's address and a state, which the portal also keeps in this browser's
signed session: a callback whose state is not the one this browser started is refused, so nobody can sign a victim
in to the attacker's account with a link. Identity checks the state (once, before it expires), the nonce, PKCE and
the ID token.
"""

from __future__ import annotations

import hmac
import logging

from flask import Blueprint, g, make_response, redirect, render_template, request, session, url_for
from werkzeug.wrappers import Response

from tend_portal.auth import clear_session_cookie, require_session, set_session_cookie
from tend_portal.context import portal
from tend_portal.grpc_calls import InvalidArgument, NotFound, Unauthenticated
from tend_portal.identity_admin_client import OidcNotConfigured
from tend_portal.redirects import local_path

log = logging.getLogger(__name__)

blueprint = Blueprint("oidc", __name__)

_STATE_KEY = "oidc_state"
_NEXT_KEY = "oidc_next"
_MAX_CALLBACK_VALUE = 2048
_FAILED = "We could not sign you in with your institution's account. Please try again."
_DECLINED = "Signing in was cancelled at your institution's sign-in page. You can try again."


def callback_address() -> str:
    """The callback as the provider must send the browser back to it; identity must list it as allowed."""
    return portal().settings.public_base_url + url_for("oidc.callback")


@blueprint.app_context_processor
def sign_in_options() -> dict[str, object]:
    return {"oidc_institution_name": portal().settings.oidc_institution_name}


def _problem(message: str, status: int) -> Response:
    body = render_template("sign_in.html", next_path="/", username="", error=message)
    return make_response(body, status)


@blueprint.post("/sign-in/oidc")
def start() -> Response:
    next_path = local_path(request.form.get("next"))
    try:
        started = portal().identity_admin.start_oidc_sign_in(callback_address())
    except OidcNotConfigured as exc:
        return _problem(exc.message, 503)
    session[_STATE_KEY] = started.state
    session[_NEXT_KEY] = next_path
    return redirect(started.authorization_url, 303)


@blueprint.get("/sign-in/oidc/callback")
def callback() -> Response:
    expected = session.pop(_STATE_KEY, None)
    next_path = local_path(session.pop(_NEXT_KEY, None))
    if request.args.get("error"):
        # The person declined, or the provider refused; its description is not shown (it is the provider's text).
        return _problem(_DECLINED, 400)
    state = request.args.get("state", "")
    code = request.args.get("code", "")
    valid = 0 < len(state) <= _MAX_CALLBACK_VALUE and 0 < len(code) <= _MAX_CALLBACK_VALUE
    if not valid or not isinstance(expected, str) or not hmac.compare_digest(expected, state):
        log.info("oidc callback refused", extra={"fields": {"reason": "state not started by this browser"}})
        return _problem(_FAILED, 400)
    try:
        signed_in = portal().identity_admin.finish_oidc_sign_in(state, code)
    except (Unauthenticated, InvalidArgument, NotFound):
        return _problem(_FAILED, 401)
    except OidcNotConfigured as exc:
        return _problem(exc.message, 503)
    # A fresh browser session (and so a fresh CSRF token) for the signed-in person, as for a local sign-in.
    session.clear()
    log.info("signed in with oidc", extra={"fields": {"person_id": signed_in.person.person_id}})
    response = redirect(next_path, 303)
    set_session_cookie(response, signed_in.session_token, signed_in.expires_at)
    return response


@blueprint.post("/sign-out-everywhere")
def sign_out_everywhere() -> Response:
    current = require_session()
    revoked = portal().identity_admin.sign_out_everywhere(current.token)
    log.info("signed out everywhere", extra={"fields": {"person_id": current.session.person.person_id}})
    session.clear()
    g.pop("current_session", None)  # the page that follows is a signed-out one
    response = make_response(render_template("signed_out_everywhere.html", revoked=revoked))
    clear_session_cookie(response)
    return response
