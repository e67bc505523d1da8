"""Supportive e-mails from a case: the sender previews the institution's template (rendered by notify with the
student's preferred name and the sender's details), edits the plain text and sends it; afterwards the case page shows
its delivery status, and here the sender records a decision about an uncertain delivery or that the student replied.

Notify decides who may write to which student (it asks identity) and checks the text; the form carries the request
id, so a double submit sends one e-mail.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass, field

from flask import Blueprint, abort, make_response, redirect, render_template, request, url_for
from werkzeug.wrappers import Response

from tend_portal.auth import require_staff
from tend_portal.clients import INDICATORS_AUDIENCE, NOTIFY_AUDIENCE
from tend_portal.context import portal
from tend_portal.grpc_calls import PermissionDenied
from tend_portal.indicators_client import Case
from tend_portal.notify_client import UNCERTAIN_DECISIONS, EnquiryRejected, Preview
from tend_portal.views_cases import find_case, no_access, student_name, valid_id

log = logging.getLogger(__name__)

blueprint = Blueprint("enquiries", __name__)

# Notify's own limits (content_rules.py); checked here too so the sender hears at once, with the text kept.
_MAX_SUBJECT = 200
_MAX_BODY = 10_000


@dataclass
class Draft:
    request_id: str
    subject: str
    body: str
    preview: Preview | None = None
    errors: list[str] = field(default_factory=list)


def _assertions() -> tuple[str, str]:
    session = require_staff().session
    return session.assertion_for(INDICATORS_AUDIENCE), session.assertion_for(NOTIFY_AUDIENCE)


def _case(case_id: str) -> tuple[Case, str]:
    """The person's case and the student's display name (resolved through identity for them)."""
    indicators_assertion, _ = _assertions()
    case = find_case(indicators_assertion, case_id)
    return case, student_name(case.student_pseudonym)


def _page(case: Case, name: str, draft: Draft, status: int = 200) -> Response:
    body = render_template("enquiry.html", case=case, name=name, draft=draft)
    return make_response(body, status)


@blueprint.get("/cases/<case_id>/enquiry")
def compose(case_id: str) -> Response:
    case, name = _case(valid_id(case_id))
    _, assertion = _assertions()
    try:
        preview = portal().notify.preview(assertion, case.student_pseudonym)
    except PermissionDenied:
        return no_access("write to this student")
    return _page(case, name, Draft(str(uuid.uuid4()), preview.subject, preview.body, preview))


def _draft_from_form() -> Draft:
    key = request.form.get("request_id", "")
    try:
        request_id = str(uuid.UUID(key))
    except ValueError:
        request_id = str(uuid.uuid4())
    subject = " ".join(request.form.get("subject", "").split())
    body = request.form.get("body", "").replace("\r\n", "\n").replace("\r", "\n").strip("\n")
    draft = Draft(request_id, subject, body)
    if not subject:
        draft.errors.append("Enter a subject.")
    elif len(subject) > _MAX_SUBJECT:
        draft.errors.append(f"Enter a subject of at most {_MAX_SUBJECT} characters.")
    if not body.strip():
        draft.errors.append("Write the message.")
    elif len(body) > _MAX_BODY:
        draft.errors.append(f"Write a message of at most {_MAX_BODY:,} characters.")
    return draft


@blueprint.post("/cases/<case_id>/enquiry")
def preview_or_send(case_id: str) -> Response:
    case_id = valid_id(case_id)
    case, name = _case(case_id)
    _, assertion = _assertions()
    draft = _draft_from_form()
    if draft.errors:
        return _page(case, name, draft, 400)
    notify = portal().notify
    try:
        if request.form.get("action") != "send":
            draft.preview = notify.preview(assertion, case.student_pseudonym, draft.subject, draft.body)
            return _page(case, name, draft)
        sent = notify.request(assertion, draft.request_id, case.student_pseudonym, case_id, draft.subject, draft.body)
    except EnquiryRejected as rejected:
        draft.errors.extend(rejected.problems or [rejected.message])
        return _page(case, name, draft, 400)
    except PermissionDenied:
        return no_access("write to this student")
    log.info(
        "supportive enquiry requested",
        extra={"fields": {"case_id": case_id, "request_id": sent.request_id, "status": sent.status}},
    )
    target = url_for("cases.show_case", case_id=case_id, enquiry=sent.request_id, _anchor="enquiries")
    return redirect(target, 303)


def _request_id(value: str) -> str:
    try:
        return str(uuid.UUID(value))
    except ValueError:
        abort(404)


@blueprint.post("/cases/<case_id>/enquiries/<request_id>/resolve")
def resolve(case_id: str, request_id: str) -> Response:
    case_id, request_id = valid_id(case_id), _request_id(request_id)
    decision = request.form.get("decision", "")
    if decision not in {value for value, _label in UNCERTAIN_DECISIONS}:
        abort(400, description="Choose what Tend should do with the e-mail whose delivery is uncertain.")
    _, assertion = _assertions()
    try:
        status = portal().notify.resolve_uncertain(assertion, request_id, decision)
    except PermissionDenied:
        return no_access("this e-mail")
    log.info("uncertain delivery decided", extra={"fields": {"request_id": request_id, "status": status}})
    return redirect(url_for("cases.show_case", case_id=case_id, enquiry=request_id, _anchor="enquiries"), 303)


@blueprint.post("/cases/<case_id>/enquiries/<request_id>/answered")
def answered(case_id: str, request_id: str) -> Response:
    case_id, request_id = valid_id(case_id), _request_id(request_id)
    _, assertion = _assertions()
    try:
        portal().notify.record_answered(assertion, request_id)
    except PermissionDenied:
        return no_access("this e-mail")
    return redirect(url_for("cases.show_case", case_id=case_id, enquiry=request_id, _anchor="enquiries"), 303)
