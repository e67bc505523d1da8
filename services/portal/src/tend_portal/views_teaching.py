"""Staff pages: choosing a module run and opening a teaching session, and the presenter screen with its code."""

from __future__ import annotations

import logging
import uuid
from datetime import UTC, datetime

from flask import Blueprint, abort, jsonify, make_response, redirect, render_template, request, url_for
from markupsafe import Markup
from werkzeug.wrappers import Response

from tend_portal.auth import require_staff
from tend_portal.clients import CHECKIN_AUDIENCE, IDENTITY_AUDIENCE, ModuleRun
from tend_portal.context import portal
from tend_portal.grpc_calls import InvalidArgument, PermissionDenied
from tend_portal.presenter import PresenterScreen, UnexpectedPresenterCode, presenter_screen

log = logging.getLogger(__name__)

blueprint = Blueprint("teaching", __name__)

_MAX_ROOM = 100
_MAX_MODULE_RUN_ID = 100


def _new_session_page(
    runs: list[ModuleRun], chosen: str = "", room: str = "", errors: dict[str, str] | None = None, status: int = 200
) -> Response:
    body = render_template("sessions_new.html", runs=runs, chosen=chosen, room=room, errors=errors or {})
    return make_response(body, status)


def _teaching_runs() -> list[ModuleRun]:
    return portal().identity.list_teaching_module_runs(require_staff().session.assertion_for(IDENTITY_AUDIENCE))


@blueprint.get("/sessions/new")
def new_session() -> Response:
    return _new_session_page(_teaching_runs())


@blueprint.post("/sessions")
def open_session() -> Response:
    current = require_staff()
    assertion = current.session.assertion_for(CHECKIN_AUDIENCE)
    module_run_id = request.form.get("module_run_id", "").strip()
    room = " ".join(request.form.get("room", "").split())
    errors = {}
    if not module_run_id or len(module_run_id) > _MAX_MODULE_RUN_ID:
        errors["module_run_id"] = "Choose the module you are teaching."
    if not room:
        errors["room"] = "Enter the room, for example Main Building LT1."
    elif len(room) > _MAX_ROOM:
        errors["room"] = f"Enter a room name of at most {_MAX_ROOM} characters."
    if errors:
        return _new_session_page(_teaching_runs(), module_run_id, room, errors, 400)
    try:
        opened = portal().checkin.open_session(assertion, module_run_id, room)
    except (InvalidArgument, PermissionDenied) as exc:
        field = "module_run_id" if isinstance(exc, PermissionDenied) else "room"
        return _new_session_page(_teaching_runs(), module_run_id, room, {field: exc.message}, exc.http_status)
    log.info(
        "teaching session opened",
        extra={"fields": {"person_id": current.session.person.person_id, "session_id": opened.session_id}},
    )
    return redirect(url_for("teaching.present", session_id=opened.session_id), 303)


def _screen(session_id: str) -> PresenterScreen:
    try:
        uuid.UUID(session_id)
    except ValueError:
        abort(404)
    current = require_staff()
    code = portal().checkin.get_presenter_code(current.session.assertion_for(CHECKIN_AUDIENCE), session_id)
    try:
        return presenter_screen(code, portal().settings.checkin_base_url, datetime.now(UTC))
    except UnexpectedPresenterCode:
        log.warning("presenter code refused", extra={"fields": {"session_id": session_id}})
        abort(502, description="The check-in service gave an answer the portal will not show. Please try again.")


@blueprint.get("/present/<session_id>")
def present(session_id: str) -> str:
    screen = _screen(session_id)
    return render_template(
        "present.html",
        screen=screen,
        qr=Markup(screen.qr_svg),  # noqa: S704 (SVG made by segno here from a checked address, not user input)
        code_url=url_for("teaching.present_code", session_id=session_id),
    )


@blueprint.get("/present/<session_id>/code.json")
def present_code(session_id: str) -> Response:
    return jsonify(_screen(session_id).as_json())
