"""Signing in and out, the landing page and the person's own details."""

from __future__ import annotations

import logging

from flask import Blueprint, make_response, redirect, render_template, request, session, url_for
from werkzeug.wrappers import Response

from tend_portal.auth import clear_session_cookie, require_session, session_token, set_session_cookie
from tend_portal.context import portal
from tend_portal.grpc_calls import InvalidArgument, Unauthenticated
from tend_portal.landing import landing_preference
from tend_portal.redirects import local_path

log = logging.getLogger(__name__)

blueprint = Blueprint("account", __name__)

_MAX_USERNAME = 200
_MAX_PASSWORD = 1024
_WRONG_CREDENTIALS = "The user name or password is not right. Check them and try again."


def _sign_in_page(next_path: str, username: str = "", error: str | None = None, status: int = 200) -> Response:
    body = render_template("sign_in.html", next_path=next_path, username=username, error=error)
    return make_response(body, status)


@blueprint.get("/sign-in")
def sign_in_form() -> Response:
    return _sign_in_page(local_path(request.args.get("next")))


@blueprint.post("/sign-in")
def sign_in() -> Response:
    next_path = local_path(request.form.get("next"))
    username = request.form.get("username", "").strip()
    password = request.form.get("password", "")
    if not username or not password:
        return _sign_in_page(next_path, username, "Enter your user name and your password.", 400)
    if len(username) > _MAX_USERNAME or len(password) > _MAX_PASSWORD:
        return _sign_in_page(next_path, "", _WRONG_CREDENTIALS, 401)
    try:
        signed_in = portal().identity.sign_in(username, password)
    except (Unauthenticated, InvalidArgument):
        return _sign_in_page(next_path, username, _WRONG_CREDENTIALS, 401)
    # A fresh browser session (and so a fresh CSRF token) for the signed-in person.
    session.clear()
    log.info("signed in", extra={"fields": {"person_id": signed_in.person.person_id}})
    response = redirect(next_path, 303)
    set_session_cookie(response, signed_in.session_token, signed_in.expires_at)
    return response


@blueprint.post("/sign-out")
def sign_out() -> Response:
    token = session_token()
    if token is not None:
        portal().identity.sign_out(token)
    session.clear()
    response = redirect(url_for("account.sign_in_form"), 303)
    clear_session_cookie(response)
    return response


@blueprint.get("/")
def landing() -> str:
    current = require_session()
    preference = landing_preference(portal().identity, current.token)
    return render_template(
        "landing.html",
        person=current.session.person,
        preference=preference,
        checkin_base_url=portal().settings.checkin_base_url,
    )


@blueprint.get("/me")
def me() -> str:
    current = require_session()
    return render_template("me.html", person=current.session.person)
