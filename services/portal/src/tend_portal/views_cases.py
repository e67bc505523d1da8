"""Staff pages about students who may need a supportive word: my cases, one case (the student's engagement summary,
flags with their evidence, history, actions and supportive e-mails) and a module run's cohort patterns.

The portal decides no access: indicators lists (and gives one by one) only the cases routed to the person for
students identity lets them see, and refuses a summary otherwise (audited either way); names come from identity's
ResolvePseudonyms for the person asking. A refusal is shown as a plain "you don't have access" page.
"""

from __future__ import annotations

import logging
import re
import uuid
from dataclasses import dataclass, field

from flask import Blueprint, abort, make_response, redirect, render_template, request, url_for
from werkzeug.wrappers import Response

from tend_portal.auth import require_staff
from tend_portal.clients import IDENTITY_AUDIENCE, INDICATORS_AUDIENCE, NOTIFY_AUDIENCE
from tend_portal.context import portal
from tend_portal.grpc_calls import InvalidArgument, NotFound, PermissionDenied, ServiceCallError
from tend_portal.indicators_client import CASE_ACTIONS, MAX_NOTE_LENGTH, Case, EngagementSummary
from tend_portal.notify_client import UNCERTAIN_DECISIONS, EnquiryStatus

log = logging.getLogger(__name__)

blueprint = Blueprint("cases", __name__)

# Module run ids are opaque identifiers; this shape keeps anything else out of addresses and requests.
_MODULE_RUN_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,99}")
# The most recent supportive e-mails of a case whose status is asked of notify on each view of the case.
_MAX_ENQUIRIES_SHOWN = 10
_NO_NAME = "Name not available to you"


def valid_id(value: str) -> str:
    """A UUID in its canonical form; anything else is a page that does not exist."""
    try:
        return str(uuid.UUID(value))
    except ValueError:
        abort(404)


def no_access(what: str = "this student") -> Response:
    """The refusal page: the service said no, and nothing about the student is shown."""
    return make_response(render_template("no_access.html", what=what), 403)


def find_case(assertion: str, case_id: str) -> Case:
    """One of the person's cases (open or closed); 404 when indicators says it is not among them. Indicators audits
    the read of this one case only."""
    try:
        return portal().indicators.get_case(assertion, case_id)
    except NotFound:
        abort(404, description="We could not find that case among the cases routed to you. It may have been moved.")


def student_name(pseudonym: str) -> str:
    """The student's display name, resolved by identity for the person (with their assertion for identity)."""
    assertion = require_staff().session.assertion_for(IDENTITY_AUDIENCE)
    return portal().students.display_names(assertion, [pseudonym]).get(pseudonym, _NO_NAME)


def _module_names() -> dict[str, str]:
    """Names of the module runs the person teaches; other runs are shown by reference. Best effort: a page about a
    student does not fail because module names could not be read."""
    current = require_staff()
    try:
        runs = portal().identity.list_teaching_module_runs(current.session.assertion_for(IDENTITY_AUDIENCE))
    except ServiceCallError:
        return {}
    return {run.module_run_id: f"{run.module_code} {run.title} ({run.term})" for run in runs}


def _identity_assertion() -> str:
    return require_staff().session.assertion_for(IDENTITY_AUDIENCE)


@blueprint.get("/cases")
def my_cases() -> str:
    assertion = require_staff().session.assertion_for(INDICATORS_AUDIENCE)
    include_closed = request.args.get("closed") == "1"
    cases = portal().indicators.list_cases(assertion, include_closed=include_closed)
    cases.sort(key=lambda case: (case.opened_at is not None, case.opened_at), reverse=True)
    pseudonyms = [case.student_pseudonym for case in cases]
    names = portal().students.display_names(_identity_assertion(), pseudonyms) if cases else {}
    return render_template("cases.html", cases=cases, names=names, no_name=_NO_NAME, include_closed=include_closed)


@dataclass
class ActionForm:
    kind: str = ""
    note: str = ""
    errors: dict[str, str] = field(default_factory=dict)


def _enquiries(case: Case, just_sent: str | None) -> list[EnquiryStatus]:
    """The delivery status of the case's supportive e-mails (and of one just sent, which the case's history may not
    mention yet), newest first. One that notify does not know or will not show is left out."""
    ids = list(case.enquiry_request_ids)
    if just_sent and just_sent not in ids:
        ids.insert(0, just_sent)
    assertion = require_staff().session.assertion_for(NOTIFY_AUDIENCE)
    shown = []
    for request_id in ids[:_MAX_ENQUIRIES_SHOWN]:
        try:
            shown.append(portal().notify.status(assertion, request_id))
        except (NotFound, PermissionDenied):
            continue
    return shown


def case_page(case_id: str, form: ActionForm | None = None, status: int = 200) -> Response:
    assertion = require_staff().session.assertion_for(INDICATORS_AUDIENCE)
    case = find_case(assertion, case_id)
    try:
        summary: EngagementSummary = portal().indicators.engagement_summary(assertion, case.student_pseudonym)
    except PermissionDenied:
        return no_access()
    just_sent = request.args.get("enquiry", "")
    just_sent = str(uuid.UUID(just_sent)) if _is_uuid(just_sent) else ""
    body = render_template(
        "case.html",
        case=case,
        name=student_name(case.student_pseudonym),
        summary=summary,
        modules=_module_names(),
        enquiries=_enquiries(case, just_sent),
        just_sent=just_sent,
        actions=CASE_ACTIONS,
        decisions=UNCERTAIN_DECISIONS,
        form=form or ActionForm(),
        recorded=request.args.get("recorded", "") if form is None else "",
        idempotency_key=str(uuid.uuid4()),
        max_note=MAX_NOTE_LENGTH,
    )
    return make_response(body, status)


def _is_uuid(value: str) -> bool:
    try:
        uuid.UUID(value)
    except ValueError:
        return False
    return True


@blueprint.get("/cases/<case_id>")
def show_case(case_id: str) -> Response:
    return case_page(valid_id(case_id))


@blueprint.post("/cases/<case_id>/actions")
def record_action(case_id: str) -> Response:
    case_id = valid_id(case_id)
    current = require_staff()
    form = ActionForm(kind=request.form.get("kind", ""), note=request.form.get("note", "").strip())
    if form.kind not in {kind for kind, _label, _hint in CASE_ACTIONS}:
        form.errors["kind"] = "Choose what you did."
    if not form.note:
        form.errors["note"] = "Write a few words about it (for closing: the outcome)."
    elif len(form.note) > MAX_NOTE_LENGTH:
        form.errors["note"] = f"Write at most {MAX_NOTE_LENGTH:,} characters."
    if form.errors:
        return case_page(case_id, form, 400)
    key = request.form.get("idempotency_key", "")
    # A missing or broken key still records once; only a repeat of the same form is recognised as a repeat.
    key = str(uuid.UUID(key)) if _is_uuid(key) else str(uuid.uuid4())
    assertion = current.session.assertion_for(INDICATORS_AUDIENCE)
    try:
        portal().indicators.record_case_action(assertion, case_id, form.kind, form.note, key)
    except PermissionDenied:
        return no_access()
    except InvalidArgument as exc:
        form.errors["note"] = exc.message
        return case_page(case_id, form, 400)
    log.info(
        "case action recorded",
        extra={"fields": {"person_id": current.session.person.person_id, "case_id": case_id, "kind": form.kind}},
    )
    return redirect(url_for("cases.show_case", case_id=case_id, recorded=form.kind), 303)


@blueprint.get("/cohorts")
def choose_cohort() -> str:
    current = require_staff()
    runs = portal().identity.list_teaching_module_runs(current.session.assertion_for(IDENTITY_AUDIENCE))
    return render_template("cohorts.html", runs=runs)


@blueprint.get("/cohorts/<module_run_id>")
def cohort(module_run_id: str) -> Response:
    if not _MODULE_RUN_ID.fullmatch(module_run_id):
        abort(404)
    assertion = require_staff().session.assertion_for(INDICATORS_AUDIENCE)
    try:
        patterns = portal().indicators.cohort_patterns(assertion, module_run_id)
    except PermissionDenied:
        return no_access("this module's cohort patterns")
    # The reference data's label when indicators has one; asking identity for the person's runs only otherwise.
    name = patterns.module_run_label or _module_names().get(module_run_id, "")
    return make_response(render_template("cohort.html", patterns=patterns, name=name))
