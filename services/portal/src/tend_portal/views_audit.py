"""Audit pages: the data protection officer's questions to the audit log (who accessed a person, what a member of
staff did, refused attempts, break-glass grants, module changes) with CSV and JSON downloads, the break-glass grants
for review, and a person's own "who has accessed my record".

Audit decides every answer (it asks identity whether the person may read what the query covers, and records the
query before answering); the portal passes the person's assertion for audience "audit" and shows what comes back, or
a refusal page. The officer may name the person by student number, staff number or staff user name: identity's
FindPerson turns it into the person id audit records use (deciding, and recording, that look-up itself), and its
answer's name is shown beside that id. Records hold identifiers only; no other names are resolved here.
"""

from __future__ import annotations

import dataclasses
import logging
import re
import uuid
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta

from flask import Blueprint, abort, g, make_response, render_template, request
from werkzeug.wrappers import Response

from tend_portal.audit_client import (
    ACCESSES_TO_PERSON,
    ACTIONS_BY_PERSON,
    BREAK_GLASS_GRANTS,
    MODULE_CHANGES,
    PERSON_QUERIES,
    REFUSED_ATTEMPTS,
    RecordQuery,
)
from tend_portal.auth import CurrentSession, require_session, require_staff
from tend_portal.clients import AUDIT_AUDIENCE, IDENTITY_AUDIENCE
from tend_portal.context import portal
from tend_portal.grpc_calls import NotFound, PermissionDenied

log = logging.getLogger(__name__)

blueprint = Blueprint("audit", __name__)

DPO_ROLE = "data_protection_officer"
# The questions, in the order the page offers them.
QUESTIONS: tuple[tuple[str, str], ...] = (
    (ACCESSES_TO_PERSON, "Who accessed a person's records"),
    (ACTIONS_BY_PERSON, "What a member of staff accessed or did"),
    (REFUSED_ATTEMPTS, "Refused attempts"),
    (BREAK_GLASS_GRANTS, "Break-glass grants"),
    (MODULE_CHANGES, "Module changes"),
)
# Why the officer asks; recorded by audit with the query. A fixed list, so nothing personal is typed into it.
PURPOSES: tuple[tuple[str, str], ...] = (
    ("subject access request", "A subject access request"),
    ("investigation of a concern", "Investigating a concern or complaint"),
    ("routine review", "Routine review of access"),
)
OWN_RECORD_PURPOSE = "a person viewing who accessed their own record"
_QUESTION_NAMES = dict(QUESTIONS)
_PURPOSE_VALUES = {value for value, _ in PURPOSES}
_FORMATS = {"csv": ("text/csv; charset=utf-8", "csv"), "json": ("application/json", "json")}
_REFUSED = "You do not have access to these audit records. Only the data protection officer can search the log."
_MAX_TOKEN = 200
# A student or staff number or a staff user name as typed: identity has the last word, this only keeps out what is
# none of them.
_MAX_NUMBER = 64
_NUMBER = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@/-]*")
_PERSON_NEEDED = "Enter the person's student number, staff number, staff user name or Tend id."
_NOT_A_NUMBER = "Enter a student number (for example S1234567), a staff number, a staff user name or a Tend id."
_NOBODY = "No student or member of staff has this number or user name. Check it, or enter their Tend id."


@blueprint.app_context_processor
def audit_navigation() -> dict[str, object]:
    """Whether the navigation shows the audit log link; a convenience only, since audit decides every answer."""
    current = g.get("current_session")
    return {"show_audit_search": isinstance(current, CurrentSession) and DPO_ROLE in current.session.person.roles}


@dataclass
class SearchForm:
    question: str = ACCESSES_TO_PERSON
    person: str = ""
    date_from: str = ""
    date_to: str = ""
    purpose: str = ""
    errors: dict[str, str] | None = None

    def query_string(self, **extra: str) -> dict[str, str]:
        values = {
            "question": self.question,
            "person": self.person,
            "from": self.date_from,
            "to": self.date_to,
            "purpose": self.purpose,
        }
        return {**{k: v for k, v in values.items() if v}, **extra}


def _read_form() -> tuple[SearchForm, RecordQuery | None]:
    """The form as given, and the query when the form is complete and valid (errors by field otherwise)."""
    form = SearchForm(
        question=request.args.get("question", ACCESSES_TO_PERSON),
        person=request.args.get("person", "").strip(),
        date_from=request.args.get("from", "").strip(),
        date_to=request.args.get("to", "").strip(),
        purpose=request.args.get("purpose", ""),
    )
    errors: dict[str, str] = {}
    if form.question not in _QUESTION_NAMES:
        errors["question"] = "Choose what you want to find."
    person_id = ""
    if form.question in PERSON_QUERIES:
        if not form.person:
            errors["person"] = _PERSON_NEEDED
        else:
            try:
                person_id = str(uuid.UUID(form.person))
            except ValueError:
                # Not an id: a number for identity to look up (_with_person), if it looks like one.
                if len(form.person) > _MAX_NUMBER or not _NUMBER.fullmatch(form.person):
                    errors["person"] = _NOT_A_NUMBER
    if form.purpose not in _PURPOSE_VALUES:
        errors["purpose"] = "Choose why you are searching the log."
    start = _date(form.date_from, "date_from", errors)
    end = _date(form.date_to, "date_to", errors)
    if start and end and end < start:
        errors["date_to"] = "The end date must be the same as or after the start date."
    if errors:
        form.errors = errors
        return form, None
    occurred_from = datetime.combine(start, time.min, tzinfo=UTC) if start else None
    # The end date is inclusive on the page; the query's end is exclusive.
    occurred_until = datetime.combine(end + timedelta(days=1), time.min, tzinfo=UTC) if end else None
    return form, RecordQuery(form.question, person_id, occurred_from, occurred_until)


def _date(text: str, field: str, errors: dict[str, str]) -> date | None:
    if not text:
        return None
    try:
        return date.fromisoformat(text)
    except ValueError:
        errors[field] = "Enter a date as year-month-day, for example 2026-10-05."
        return None


def _assertion(current: CurrentSession) -> str:
    return current.session.assertion_for(AUDIT_AUDIENCE)


def _identity_assertion(current: CurrentSession) -> str:
    return current.session.assertion_for(IDENTITY_AUDIENCE)


def _with_person(current: CurrentSession, form: SearchForm, query: RecordQuery) -> tuple[RecordQuery, dict[str, str]]:
    """The query naming its person by id, and the name identity gave for that id when the form held a number.

    Raises NotFound when nobody has the number, PermissionDenied when identity will not say (it tells only the data
    protection officer, or a person about themself, and records every look-up)."""
    if query.kind not in PERSON_QUERIES or query.person_id:
        return query, {}
    found = portal().identity_admin.find_person(_identity_assertion(current), form.person)
    return dataclasses.replace(query, person_id=found.person_id), {found.person_id: found.display_name}


def _search_page(form: SearchForm, status: int = 200, **results: object) -> Response:
    body = render_template(
        "audit_search.html",
        form=form,
        questions=QUESTIONS,
        purposes=PURPOSES,
        **{"page": None, "searched": False, "person_names": {}, **results},
    )
    return make_response(body, status)


def _refused(message: str = _REFUSED) -> Response:
    return make_response(render_template("error.html", title="No access", message=message), 403)


@blueprint.get("/audit")
def search() -> Response:
    current = require_staff()
    if not request.args:
        return _search_page(SearchForm())
    form, query = _read_form()
    if query is None:
        return _search_page(form, 400)
    page_token = request.args.get("page", "")[:_MAX_TOKEN]
    try:
        query, person_names = _with_person(current, form, query)
        page = portal().audit.query_records(_assertion(current), query, form.purpose, page_token)
    except NotFound:
        form.errors = {"person": _NOBODY}
        return _search_page(form, 400)
    except PermissionDenied:
        return _refused()
    return _search_page(
        form,
        page=page,
        searched=True,
        question_name=_QUESTION_NAMES[form.question],
        person_id=query.person_id,
        person_names=person_names,
    )


@blueprint.get("/audit/export")
def export() -> Response:
    current = require_staff()
    file_format = request.args.get("format", "")
    if file_format not in _FORMATS:
        abort(400, description="Choose CSV or JSON for the download.")
    form, query = _read_form()
    if query is None:
        abort(400, description="The search is not complete. Go back to the search and check it.")
    try:
        query, _names = _with_person(current, form, query)
        started = portal().audit.export_records(_assertion(current), query, form.purpose, file_format)
    except NotFound:
        abort(400, description=_NOBODY)
    except PermissionDenied:
        return _refused()
    content_type, extension = _FORMATS[file_format]
    filename = f"tend-audit-{form.question.replace('_', '-')}-{datetime.now(UTC):%Y%m%dT%H%M%SZ}.{extension}"
    # Streamed as audit sends it: a large export never sits whole in the portal's memory.
    response = Response(started.chunks, content_type=content_type)
    response.headers["Content-Disposition"] = f'attachment; filename="{filename}"'
    response.headers["Cache-Control"] = "no-store"
    return response


@blueprint.get("/audit/break-glass")
def break_glass_grants() -> Response:
    current = require_staff()
    since_text = request.args.get("since", "").strip()
    errors: dict[str, str] = {}
    since_date = _date(since_text, "since", errors)
    if errors:
        body = render_template("audit_break_glass.html", grants=None, since=since_text, errors=errors)
        return make_response(body, 400)
    since = datetime.combine(since_date, time.min, tzinfo=UTC) if since_date else None
    try:
        grants = portal().identity_admin.list_break_glass_grants(_identity_assertion(current), since)
    except PermissionDenied:
        return _refused("You do not have access to the break-glass grants. They are for the data protection officer.")
    now = datetime.now(UTC)
    body = render_template("audit_break_glass.html", grants=grants, since=since_text, errors={}, now=now)
    return make_response(body)


@blueprint.get("/my-record/accesses")
def own_accesses() -> Response:
    """Who has accessed the signed-in person's record: audit answers a person about themself."""
    current = require_session()
    query = RecordQuery(ACCESSES_TO_PERSON, current.session.person.person_id)
    page_token = request.args.get("page", "")[:_MAX_TOKEN]
    try:
        page = portal().audit.query_records(_assertion(current), query, OWN_RECORD_PURPOSE, page_token)
    except PermissionDenied:
        return _refused("We could not show who has accessed your record. Please contact the data protection officer.")
    return make_response(render_template("audit_own.html", page=page))
