"""The student pages: the check-in form, the check-in itself, and the portal's token hand-off.

Server-rendered HTML that works in any phone browser without JavaScript. Each request reads: validate input,
authenticate the check-in token, one domain call (recording), then render.
"""

from __future__ import annotations

import logging
import time
import uuid
from dataclasses import dataclass
from datetime import datetime

import grpc
import psycopg
import psycopg_pool
from flask import Flask, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue
from werkzeug.exceptions import HTTPException
from werkzeug.wrappers import Response

from tend_checkin import codes
from tend_checkin.handoff import (
    begin_handoff,
    checkin_token_claims,
    complete_handoff,
    cookie_token_claims,
    portal_handoff_url,
    set_token_cookie,
)
from tend_checkin.networks import client_address
from tend_checkin.prerendered import PrerenderedTemplate, marker
from tend_checkin.recording import CheckinResult, CheckinStatus
from tend_checkin.sessions import TeachingSession
from tend_checkin.web_context import WebContext, web_context

log = logging.getLogger(__name__)

CHECKIN_FORM = "checkin_form"
CHECK_IN = "check_in"
HANDOFF = "handoff"

# Where the lean check-in path (lean_checkin.py) leaves a check-in it recorded but leaves to this view to answer.
DECIDED_KEY = "tend_checkin.decided"


@dataclass(frozen=True)
class Decided:
    """A check-in already recorded for this request: its session, the code entered, and the recorder's result, or
    the exception recording raised (raised again here, for the app's error handlers)."""

    session: TeachingSession
    code: str
    outcome: CheckinResult | Exception


def register(app: Flask) -> None:
    app.add_url_rule("/c/<session_id>", CHECKIN_FORM, show_checkin_form, methods=["GET"])
    app.add_url_rule("/c/<session_id>", CHECK_IN, check_in, methods=["POST"])
    app.add_url_rule("/token", HANDOFF, receive_token, methods=["POST"])
    app.register_error_handler(HTTPException, _http_error)
    app.register_error_handler(grpc.RpcError, _dependency_unavailable)
    app.register_error_handler(psycopg.OperationalError, _dependency_unavailable)
    app.register_error_handler(psycopg_pool.PoolTimeout, _dependency_unavailable)


def prerendered_done_page() -> PrerenderedTemplate:
    """The page of a successful check-in, filled in by `_result_page`: the one page of the hot path."""
    context = {
        "heading": marker("heading"),
        "session": {"room": marker("room"), "date": marker("date"), "times": marker("times")},
        "recorded_at": marker("recorded_at"),
    }
    return PrerenderedTemplate(
        render_template, "done.html", context, ("heading", "room", "date", "times", "recorded_at")
    )


def show_checkin_form(session_id: str) -> ResponseReturnValue:
    """The form, with the code filled in when it came from a scanned QR code. Changes nothing but the browser
    session (a hand-off nonce or CSRF token)."""
    context = web_context()
    session = _find_session(context, session_id)
    if session is None:
        return _session_not_found()
    code = request.args.get("code", "")
    code = code if codes.is_well_formed(code, context.settings.code_digits) else ""
    if cookie_token_claims(context.verifier) is None:
        return _send_to_portal(context, session.id, code)
    return _form(context, session, code=code)


def check_in(session_id: str) -> ResponseReturnValue:
    context = web_context()
    decided: Decided | None = request.environ.get(DECIDED_KEY)
    if decided is not None:
        if isinstance(decided.outcome, Exception):
            raise decided.outcome
        return _result_page(context, decided.session, decided.code, decided.outcome)
    parsed_id = _parse_session_id(session_id)
    if parsed_id is None:
        return _session_not_found()
    digits = context.settings.code_digits
    code = request.form.get("code", "").strip()
    claims = cookie_token_claims(context.verifier)
    if claims is None:
        return _send_to_portal(context, parsed_id, code if codes.is_well_formed(code, digits) else "")
    session = context.sessions.get(parsed_id)
    if session is None:
        return _session_not_found()
    if not codes.is_well_formed(code, digits):
        return _form(context, session, error=f"Enter the {digits}-digit code shown on the screen.", status=400)

    # Only a session limited to campus networks needs the student's address.
    address = (
        client_address(request.remote_addr, request.headers.get("X-Forwarded-For"), context.trusted_proxies)
        if session.networks
        else None
    )
    result = context.recorder.record(session, str(claims["sub"]), code, context.clock(), address)
    return _result_page(context, session, code, result)


def receive_token() -> ResponseReturnValue:
    """The portal's hand-off of a check-in token. Exempt from the CSRF form token: the state nonce, which only
    this browser was given, does that job."""
    context = web_context()
    next_path = complete_handoff(request.form.get("state", ""))
    if next_path is None:
        return _message(
            "This sign-in has expired",
            "Scan the code on the screen again, or open the check-in link again, to check in.",
            status=400,
        )
    token = request.form.get("token", "")
    claims = checkin_token_claims(context.verifier, token) or {}
    # The token's own expiry bounds the cookie; verification allows a little clock leeway, the cookie does not.
    lifetime = int(claims.get("exp", 0) - time.time())
    if lifetime <= 0:
        return _message(
            "We could not confirm who you are",
            "Scan the code on the screen again. If this keeps happening, sign in to Tend again.",
            status=400,
        )
    response = redirect(next_path, 303)
    set_token_cookie(response, token, lifetime, context.settings.uses_https)
    return response


def _parse_session_id(session_id: str) -> uuid.UUID | None:
    try:
        return uuid.UUID(session_id)
    except ValueError:
        return None


def _find_session(context: WebContext, session_id: str) -> TeachingSession | None:
    parsed = _parse_session_id(session_id)
    return context.sessions.get(parsed) if parsed is not None else None


def _send_to_portal(context: WebContext, session_id: uuid.UUID, code: str) -> Response:
    path = url_for(CHECKIN_FORM, session_id=str(session_id)) + (f"?code={code}" if code else "")
    state = begin_handoff(path)
    target = portal_handoff_url(context.settings.portal_base_url, context.settings.public_base_url + path, state)
    return redirect(target, 303)


# The results answered by the success page (done.html).
DONE = frozenset({CheckinStatus.RECORDED, CheckinStatus.ALREADY_RECORDED})


def done_page(context: WebContext, session: TeachingSession, result: CheckinResult) -> str:
    """The success page of a RECORDED or ALREADY_RECORDED result. Needs no request context once
    `context.done_page.is_ready`."""
    recorded_at = result.recorded_at or context.clock()
    return context.done_page.render(
        heading="You are checked in" if result.status is CheckinStatus.RECORDED else "You are already checked in",
        recorded_at=_clock_time(context, recorded_at),
        **_describe(context, session),
    )


def _result_page(
    context: WebContext, session: TeachingSession, code: str, result: CheckinResult
) -> ResponseReturnValue:
    status = result.status
    if status in DONE:
        return done_page(context, session, result)
    if status is CheckinStatus.NOT_YET_OPEN:
        opens = _clock_time(context, session.checkin_opens_at)
        return _form(context, session, error=f"Too early: check-in for this session opens at {opens}.", status=403)
    if status is CheckinStatus.CLOSED:
        return _message(
            "Check-in has closed",
            "Check-in for this session has closed. If you attended, ask the member of staff to correct it.",
            status=403,
        )
    if status is CheckinStatus.WRONG_CODE:
        left = result.attempts_left or 0
        tries = "This was your last try." if left == 0 else f"You can try {left} more time{'s' if left > 1 else ''}."
        return _form(
            context,
            session,
            error=f"That code is not right or has expired. Enter the code now shown on the screen. {tries}",
            status=400,
        )
    if status is CheckinStatus.LOCKED_OUT:
        return _message(
            "Too many wrong codes",
            "You have entered too many wrong codes for this session, so you cannot check in to it any more. If you"
            " are in the room, ask the member of staff to mark your attendance.",
            status=403,
        )
    if status is CheckinStatus.PREVIOUS_CLASS_CODE:
        return _form(
            context,
            session,
            error="That code is for the previous class in this room. Wait for the code of your class to appear on"
            " the screen, or ask the member of staff to show it, then enter that code.",
            status=400,
        )
    if status is CheckinStatus.OFF_NETWORK:
        return _message(
            "Connect to the campus network",
            "Check-in for this session works only from the university's network. Connect your phone to the campus"
            " Wi-Fi (for example eduroam), then scan the code again.",
            status=403,
        )
    return _form(context, session, code=code, error="We could not record your check-in, please try again.", status=503)


def _describe(context: WebContext, session: TeachingSession) -> dict[str, str]:
    starts = session.starts_at.astimezone(context.display_zone)
    return {
        "room": session.room,
        "date": f"{starts:%A} {starts.day} {starts:%B}",
        "times": f"{_clock_time(context, session.starts_at)} to {_clock_time(context, session.ends_at)}",
    }


def _clock_time(context: WebContext, moment: datetime) -> str:
    return f"{moment.astimezone(context.display_zone):%H:%M}"


def _form(
    context: WebContext, session: TeachingSession, code: str = "", error: str = "", status: int = 200
) -> ResponseReturnValue:
    body = render_template(
        "checkin.html",
        session=_describe(context, session),
        session_id=str(session.id),
        code=code,
        digits=context.settings.code_digits,
        error=error,
    )
    return body, status


def _message(heading: str, text: str, status: int) -> ResponseReturnValue:
    return render_template("message.html", heading=heading, text=text), status


def _session_not_found() -> ResponseReturnValue:
    return _message(
        "Session not found",
        "We could not find this teaching session. Check the address, or scan the code on the screen again.",
        status=404,
    )


def _http_error(error: HTTPException) -> ResponseReturnValue:
    status = error.code or 500
    if status == 400 and error.description and error.description != type(error).description:
        # A description we wrote for the student (the CSRF refusal, for instance), not werkzeug's default.
        return _message("Please try again", error.description, status)
    return _message(error.name, "This page is not available. Scan the code on the screen to check in.", status)


def _dependency_unavailable(error: Exception) -> ResponseReturnValue:
    log.warning("a dependency is unavailable", extra={"fields": {"error": type(error).__name__}})
    return _message(
        "Check-in is unavailable for a moment",
        "Please try again in a few seconds. If you have already seen \u201cYou are checked in\u201d, you are.",
        status=503,
    )
