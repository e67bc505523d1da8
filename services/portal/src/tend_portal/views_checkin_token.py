"""The hand-off of a student's check-in token to the check-in host, by a form the browser posts there."""

from __future__ import annotations

import logging
import re

from flask import Blueprint, abort, make_response, render_template, request
from werkzeug.wrappers import Response

from tend_portal.auth import require_student
from tend_portal.context import portal
from tend_portal.redirects import is_checkin_page

log = logging.getLogger(__name__)

blueprint = Blueprint("checkin_token", __name__)

_STATE = re.compile(r"[A-Za-z0-9_\-.~]{8,256}")


@blueprint.get("/checkin-token")
def checkin_token() -> Response:
    settings = portal().settings
    # Checked before sign-in, so that the portal never sends anyone through sign-in towards a foreign address.
    if not is_checkin_page(request.args.get("next"), settings.checkin_base_url):
        abort(400, description="This check-in link is not valid. Scan the code in your teaching session again.")
    state = request.args.get("state", "")
    if not _STATE.fullmatch(state):
        abort(400, description="This check-in link is not valid. Scan the code in your teaching session again.")
    current = require_student()
    issued = portal().identity.issue_checkin_token(current.token)
    log.info("check-in token handed off", extra={"fields": {"person_id": current.session.person.person_id}})
    body = render_template(
        "checkin_token.html", action=f"{settings.checkin_base_url}/token", token=issued.token, state=state
    )
    response = make_response(body)
    # Only this page may post a form to the check-in host.
    response.headers["Content-Security-Policy"] = (
        "default-src 'self'; img-src 'self' data:; object-src 'none'; base-uri 'none'; frame-ancestors 'none';"
        f" form-action 'self' {settings.checkin_origin}"
    )
    return response
