"""Break-glass access for staff: one student outside the person's usual scope, now, with a written reason.

The student is named by student number, mapped to a pseudonym through identity (the portal never holds the mapping);
identity decides whether to grant, records the grant (or the refusal) for the data protection officer's review, and
says when it expires.
"""

from __future__ import annotations

import logging
import re

from flask import Blueprint, make_response, render_template, request
from werkzeug.wrappers import Response

from tend_portal.auth import require_staff
from tend_portal.clients import IDENTITY_AUDIENCE
from tend_portal.context import portal
from tend_portal.grpc_calls import InvalidArgument, NotFound, PermissionDenied

log = logging.getLogger(__name__)

blueprint = Blueprint("break_glass", __name__)

# Identity's limits on the written reason (tend_identity.break_glass).
MIN_REASON = 20
MAX_REASON = 1000
_MAX_STUDENT_NUMBER = 64
_STUDENT_NUMBER = re.compile(r"[A-Za-z0-9][A-Za-z0-9._/-]*")


def _page(student: str = "", reason: str = "", errors: dict[str, str] | None = None, status: int = 200) -> Response:
    body = render_template(
        "break_glass.html", student=student, reason=reason, errors=errors or {}, grant=None, min_reason=MIN_REASON
    )
    return make_response(body, status)


@blueprint.get("/break-glass")
def form() -> Response:
    require_staff()
    return _page()


@blueprint.post("/break-glass")
def request_access() -> Response:
    current = require_staff()
    student = request.form.get("student", "").strip()
    reason = request.form.get("reason", "").strip()
    errors: dict[str, str] = {}
    if not student:
        errors["student"] = "Enter the student number."
    elif len(student) > _MAX_STUDENT_NUMBER or not _STUDENT_NUMBER.fullmatch(student):
        errors["student"] = "Enter the student number only, for example S1234567."
    if len(reason) < MIN_REASON:
        errors["reason"] = f"Explain why you need access now, in at least {MIN_REASON} characters."
    elif len(reason) > MAX_REASON:
        errors["reason"] = f"The reason must be at most {MAX_REASON} characters."
    if errors:
        return _page(student, reason, errors, 400)
    pseudonym = portal().identity_admin.pseudonyms_of_student_numbers([student]).get(student)
    if pseudonym is None:
        return _page(student, reason, {"student": "There is no student with that student number."}, 400)
    assertion = current.session.assertion_for(IDENTITY_AUDIENCE)
    try:
        grant = portal().identity_admin.request_break_glass(assertion, pseudonym, reason)
    except (InvalidArgument, NotFound):
        return _page(student, reason, {"student": "Identity could not grant access to that student."}, 400)
    except PermissionDenied:
        body = render_template(
            "error.html", title="No access", message="Break-glass access was refused. It is for members of staff."
        )
        return make_response(body, 403)
    log.info("break-glass granted", extra={"fields": {"grant_id": grant.grant_id}})
    body = render_template(
        "break_glass.html", student=student, reason=reason, errors={}, grant=grant, min_reason=MIN_REASON
    )
    return make_response(body)
