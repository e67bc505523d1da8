"""A student's own engagement, in plain language: the same summary staff supporting them can see, and what Tend
noticed that staff may act on. The word "flag" is never used here.

Identity tells the portal the student's pseudonym (a student is shown one student: themself); indicators answers
for that pseudonym only because identity lets the student see their own records, and audits the read.
"""

from __future__ import annotations

from flask import Blueprint, make_response, render_template
from werkzeug.wrappers import Response

from tend_portal.auth import require_student
from tend_portal.clients import IDENTITY_AUDIENCE, INDICATORS_AUDIENCE
from tend_portal.context import portal
from tend_portal.grpc_calls import PermissionDenied

blueprint = Blueprint("my_engagement", __name__)


@blueprint.get("/my-engagement")
def show() -> Response:
    session = require_student().session
    assertion = session.assertion_for(INDICATORS_AUDIENCE)
    pseudonym = portal().students.own_pseudonym(session.assertion_for(IDENTITY_AUDIENCE))
    if pseudonym is None:
        return make_response(render_template("my_engagement.html", summary=None), 404)
    try:
        summary = portal().indicators.engagement_summary(assertion, pseudonym)
    except PermissionDenied:
        return make_response(render_template("my_engagement.html", summary=None), 403)
    return make_response(render_template("my_engagement.html", summary=summary))
