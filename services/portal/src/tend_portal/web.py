"""The portal's Flask app factory: pages, health routes, security headers, CSRF protection and error pages."""

from __future__ import annotations

import logging
from urllib.parse import urlencode

from flask import Flask, g, jsonify, make_response, redirect, render_template, request, url_for
from werkzeug.exceptions import HTTPException
from werkzeug.wrappers import Response

from tend_common.web import add_health_routes, add_security_headers, protect_against_csrf
from tend_portal import (
    views_account,
    views_audit,
    views_break_glass,
    views_cases,
    views_checkin_token,
    views_corrections,
    views_enquiries,
    views_modules,
    views_my_engagement,
    views_oidc,
    views_preferences,
    views_teaching,
    views_timetable,
)
from tend_portal.audit_client import AuditApi, AuditClient
from tend_portal.auth import CurrentSession, SignInRequired, clear_session_cookie
from tend_portal.channels import ServiceChannels, install_channels
from tend_portal.clients import CheckinApi, CheckinClient, IdentityApi, IdentityClient
from tend_portal.context import Portal, install
from tend_portal.corrections_client import CorrectionsClient
from tend_portal.grpc_calls import ServiceCallError
from tend_portal.identity_admin_client import IdentityAdminApi, IdentityAdminClient
from tend_portal.indicators_client import IndicatorsApi, IndicatorsClient
from tend_portal.notify_client import NotifyApi, NotifyClient
from tend_portal.redirects import local_path
from tend_portal.settings import Settings, load
from tend_portal.student_directory import IdentityStudentDirectory, StudentDirectory
from tend_portal.timetable_client import TimetableApi, TimetableClient

log = logging.getLogger(__name__)

_SESSION_COOKIE_FOR_CSRF = "tend_portal_csrf"


def create_app(
    settings: Settings | None = None,
    identity: IdentityApi | None = None,
    checkin: CheckinApi | None = None,
    *,
    indicators: IndicatorsApi | None = None,
    notify: NotifyApi | None = None,
    students: StudentDirectory | None = None,
    identity_admin: IdentityAdminApi | None = None,
    audit: AuditApi | None = None,
    timetable: TimetableApi | None = None,
) -> Flask:
    """Builds the app. Settings come from the environment and clients from the settings unless given; every client
    of one service shares the app's one channel to it."""
    settings = settings or load()
    channels = ServiceChannels(settings)
    timeout = settings.grpc_timeout_seconds
    identity = identity or IdentityClient(channels.identity, timeout)
    checkin = checkin or CheckinClient(channels.checkin, timeout)
    indicators = indicators or IndicatorsClient(channels.indicators, timeout)
    notify = notify or NotifyClient(channels.notify, timeout)
    students = students or IdentityStudentDirectory(channels.identity, timeout)
    identity_admin = identity_admin or IdentityAdminClient(channels.identity, timeout)
    audit = audit or AuditClient(channels.audit, timeout)
    timetable = timetable or TimetableClient(channels.checkin, timeout)
    corrections = CorrectionsClient(channels.identity, channels.checkin, timeout)

    app = Flask(__name__)
    app.config.update(
        SECRET_KEY=settings.secret_key,
        SESSION_COOKIE_NAME=_SESSION_COOKIE_FOR_CSRF,
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_SECURE=settings.secure_cookies,
        MAX_CONTENT_LENGTH=64 * 1024,
    )
    install_channels(app, channels)
    install(
        app,
        Portal(
            settings=settings,
            identity=identity,
            checkin=checkin,
            indicators=indicators,
            notify=notify,
            students=students,
            identity_admin=identity_admin,
            audit=audit,
            timetable=timetable,
            corrections=corrections,
        ),
    )

    # Ready means the pages everyone starts from work: sign-in and sessions (identity) and the teaching pages
    # (checkin). Indicators, notify and audit serve only some pages, which show their own "not answering" message
    # when that service is down; failing readiness for them would take every page out of service for the sake of a
    # few.
    add_health_routes(app, {"identity": identity.check_health, "checkin": checkin.check_health})
    add_security_headers(app)
    protect_against_csrf(app)
    app.register_blueprint(views_account.blueprint)
    app.register_blueprint(views_teaching.blueprint)
    app.register_blueprint(views_checkin_token.blueprint)
    app.register_blueprint(views_preferences.blueprint)
    app.register_blueprint(views_corrections.blueprint)
    app.register_blueprint(views_cases.blueprint)
    app.register_blueprint(views_enquiries.blueprint)
    app.register_blueprint(views_my_engagement.blueprint)
    app.register_blueprint(views_oidc.blueprint)
    app.register_blueprint(views_audit.blueprint)
    app.register_blueprint(views_break_glass.blueprint)
    app.register_blueprint(views_timetable.blueprint)
    app.register_blueprint(views_modules.blueprint)
    _add_error_pages(app)

    @app.context_processor
    def page_context() -> dict[str, object]:
        # Only whether someone is signed in, and whether as staff or student (for the menu); never who.
        current = g.get("current_session")
        signed_in = isinstance(current, CurrentSession)
        return {
            "signed_in": signed_in,
            "signed_in_as_staff": signed_in and current.session.person.is_staff,
            "signed_in_as_student": signed_in and current.session.person.is_student,
        }

    return app


def _wants_json() -> bool:
    return request.path.endswith(".json")


def _add_error_pages(app: Flask) -> None:
    @app.errorhandler(SignInRequired)
    def sign_in_required(_error: SignInRequired) -> Response:
        response: Response
        if _wants_json():
            response = make_response(jsonify(error="signed_out"), 401)
        else:
            # After signing in, come back to the page asked for; a form post cannot be replayed, so go home instead.
            back_to = local_path(request.full_path.rstrip("?")) if request.method == "GET" else "/"
            response = redirect(url_for("account.sign_in_form") + "?" + urlencode({"next": back_to}), 303)
        clear_session_cookie(response)
        return response

    @app.errorhandler(ServiceCallError)
    def service_call_failed(error: ServiceCallError) -> Response:
        if _wants_json():
            return make_response(jsonify(error=error.code_name.lower()), error.http_status)
        return make_response(render_template("error.html", message=error.message), error.http_status)

    @app.errorhandler(HTTPException)
    def http_error(error: HTTPException) -> Response:
        status = error.code or 500
        if _wants_json():
            return make_response(jsonify(error=(error.name or "error").lower().replace(" ", "_")), status)
        message = error.description or "Something went wrong."
        return make_response(render_template("error.html", message=message, title=error.name), status)
