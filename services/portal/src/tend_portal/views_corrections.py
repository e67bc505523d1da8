"""Attendance corrections for module staff: choose a module run and a session, then tick students present or absent
on the class list, or upload a CSV of student numbers (or pseudonyms), with one reason.

Names and student numbers come from identity (ListVisibleStudents for attendance correction, itself audited) and are
shown only to the person allowed to see them; checkin receives pseudonyms only. Identity decides who may correct
(checkin asks it for "attendance.correct" on the module run).
"""

from __future__ import annotations

import csv
import io
import logging
import uuid
from dataclasses import dataclass

from flask import Blueprint, abort, make_response, render_template, request
from werkzeug.wrappers import Response

from tend_portal.auth import require_staff
from tend_portal.clients import CHECKIN_AUDIENCE, IDENTITY_AUDIENCE
from tend_portal.context import portal
from tend_portal.corrections_client import REASONS, ClassMember, SessionSummary

log = logging.getLogger(__name__)

blueprint = Blueprint("corrections", __name__)

_MAX_ROWS = 2_000
_KINDS = {"student_number": "student numbers", "pseudonym": "pseudonyms"}
_MARKS = {"present": True, "attended": True, "yes": True, "absent": False, "no": False}


def _assertion() -> str:
    return require_staff().session.assertion_for(CHECKIN_AUDIENCE)


def _valid_id(value: str) -> str:
    try:
        return str(uuid.UUID(value))
    except ValueError:
        abort(404)


@blueprint.get("/attendance")
def choose_module_run() -> str:
    runs = portal().identity.list_teaching_module_runs(require_staff().session.assertion_for(IDENTITY_AUDIENCE))
    return render_template("corrections_runs.html", runs=runs)


@blueprint.get("/attendance/runs/<module_run_id>")
def choose_session(module_run_id: str) -> str:
    sessions = portal().corrections.sessions(_assertion(), module_run_id)
    return render_template("corrections_sessions.html", module_run_id=module_run_id, sessions=sessions)


def _find_session(assertion: str, module_run_id: str, session_id: str) -> SessionSummary:
    for session in portal().corrections.sessions(assertion, module_run_id):
        if session.session_id == session_id:
            return session
    abort(404, description="We could not find that session in this module run.")


@dataclass
class Page:
    session: SessionSummary
    members: list[ClassMember]
    reason: str = ""
    marks: dict[str, str] | None = None
    csv_kind: str = "student_number"
    csv_text: str = ""
    errors: list[str] | None = None
    recorded: int | None = None


def _page(page: Page, status: int = 200) -> Response:
    body = render_template(
        "corrections_session.html",
        page=page,
        reasons=REASONS,
        kinds=_KINDS,
        idempotency_key=str(uuid.uuid4()),
        marks=page.marks or {},
    )
    return make_response(body, status)


def _class(module_run_id: str) -> list[ClassMember]:
    # Identity lists the class, so it gets the person's assertion for identity (checkin's is for checkin only).
    members = portal().corrections.class_list(require_staff().session.assertion_for(IDENTITY_AUDIENCE), module_run_id)
    if members is None:
        abort(403, description="You may not correct attendance for this module.")
    return members


@blueprint.get("/attendance/sessions/<session_id>")
def correction_form(session_id: str) -> Response:
    assertion = _assertion()
    module_run_id = request.args.get("run", "")
    session = _find_session(assertion, module_run_id, _valid_id(session_id))
    return _page(Page(session, _class(module_run_id)))


def _csv_rows(text: str) -> list[tuple[int, str, str]]:
    """(line, identifier, mark) for each non-empty line; a header line (naming the columns) is skipped."""
    rows = []
    for line_number, values in enumerate(csv.reader(io.StringIO(text)), start=1):
        cells = [value.strip() for value in values]
        if not cells or not cells[0]:
            continue
        if line_number == 1 and cells[0].lower().replace(" ", "_") in {"student_number", "pseudonym", "student"}:
            continue
        rows.append((line_number, cells[0], cells[1].lower() if len(cells) > 1 else "present"))
    return rows


def _from_csv(text: str, kind: str, members: list[ClassMember], errors: list[str]) -> dict[str, bool]:
    """Pseudonym to present/absent from the uploaded lines; problems are added to `errors` by line number."""
    rows = _csv_rows(text)
    if len(rows) > _MAX_ROWS:
        errors.append(f"The file has more than {_MAX_ROWS} students; split it into smaller files.")
        return {}
    class_pseudonyms = {member.pseudonym for member in members}
    if kind == "student_number":
        mapped = portal().identity_admin.pseudonyms_of_student_numbers(
            sorted({identifier for _, identifier, _ in rows})
        )
    else:
        mapped = {identifier: identifier for _, identifier, _ in rows}
    wanted: dict[str, bool] = {}
    for line, identifier, mark in rows:
        if mark not in _MARKS:
            errors.append(f"Line {line}: the second column must be present or absent.")
            continue
        pseudonym = mapped.get(identifier)
        if pseudonym is None or pseudonym not in class_pseudonyms:
            errors.append(f"Line {line}: no student on this module has that {kind.replace('_', ' ')}.")
            continue
        wanted[pseudonym] = _MARKS[mark]
    return wanted


@blueprint.post("/attendance/sessions/<session_id>")
def record_corrections(session_id: str) -> Response:
    assertion = _assertion()
    module_run_id = request.args.get("run", "")
    session = _find_session(assertion, module_run_id, _valid_id(session_id))
    members = _class(module_run_id)
    reason = request.form.get("reason", "")
    kind = request.form.get("csv_kind", "student_number")
    upload = request.files.get("csv_file")
    text = request.form.get("csv_text", "")
    if upload is not None and upload.filename:
        text = upload.read().decode("utf-8-sig", errors="replace")
    marks = {m.pseudonym: request.form.get(f"mark-{m.pseudonym}", "") for m in members}
    page = Page(session, members, reason, marks, kind if kind in _KINDS else "student_number", text, errors=[])
    assert page.errors is not None
    if reason not in {code for code, _label in REASONS}:
        page.errors.append("Choose the reason for the correction.")
    wanted = {p: mark == "present" for p, mark in marks.items() if mark in {"present", "absent"}}
    if text.strip():
        wanted.update(_from_csv(text, page.csv_kind, members, page.errors))
    if not wanted and not page.errors:
        page.errors.append("Mark at least one student present or absent, or upload a list.")
    if page.errors:
        return _page(page, 400)
    key = request.form.get("idempotency_key", "")
    try:
        key = str(uuid.UUID(key))
    except ValueError:
        key = str(uuid.uuid4())
    recorded = portal().corrections.record(assertion, session.session_id, sorted(wanted.items()), reason, key)
    log.info(
        "attendance corrections sent",
        extra={"fields": {"person_id": require_staff().session.person.person_id, "entries": recorded}},
    )
    return _page(Page(session, members, recorded=recorded))
