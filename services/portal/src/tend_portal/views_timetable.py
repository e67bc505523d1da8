"""Timetable import for module staff: upload an iCalendar (.ics) or CSV file of teaching sessions for a module run
they teach. Checkin decides (it asks identity whether the person may create sessions on every run the file names),
imports the file whole or not at all, and names every bad line; the page shows those lines, or what was imported.
"""

from __future__ import annotations

import logging
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from flask import Blueprint, make_response, render_template, request
from werkzeug.wrappers import Response

from tend_portal.auth import require_staff
from tend_portal.clients import CHECKIN_AUDIENCE, IDENTITY_AUDIENCE, ModuleRun
from tend_portal.context import portal
from tend_portal.grpc_calls import PermissionDenied
from tend_portal.timetable_client import TimetableImport, TimetableRejected

log = logging.getLogger(__name__)

blueprint = Blueprint("timetable", __name__)

DEFAULT_TIMEZONE = "Europe/London"
_MAX_TIMEZONE = 64
_EXTENSIONS = {".ics": "ics", ".ical": "ics", ".ifb": "ics", ".csv": "csv"}


def _page(
    runs: list[ModuleRun],
    chosen: str = "",
    timezone: str = DEFAULT_TIMEZONE,
    errors: dict[str, str] | None = None,
    problems: list[str] | None = None,
    imported: TimetableImport | None = None,
    status: int = 200,
) -> Response:
    body = render_template(
        "timetable_import.html",
        runs=runs,
        chosen=chosen,
        timezone=timezone,
        errors=errors or {},
        problems=problems or [],
        imported=imported,
    )
    return make_response(body, status)


def _format_of(filename: str, content: bytes) -> str | None:
    """ "ics" or "csv" from the file's name, or from its first line when the name says nothing."""
    lowered = filename.lower()
    for extension, file_format in _EXTENSIONS.items():
        if lowered.endswith(extension):
            return file_format
    if content.lstrip(b"\xef\xbb\xbf \r\n\t").upper().startswith(b"BEGIN:VCALENDAR"):
        return "ics"
    return None


def _is_zone(name: str) -> bool:
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return False
    return True


@blueprint.get("/timetable")
def form() -> Response:
    current = require_staff()
    runs = portal().identity.list_teaching_module_runs(current.session.assertion_for(IDENTITY_AUDIENCE))
    return _page(runs, chosen=request.args.get("run", ""))


@blueprint.post("/timetable")
def upload() -> Response:
    current = require_staff()
    assertion = current.session.assertion_for(CHECKIN_AUDIENCE)
    runs = portal().identity.list_teaching_module_runs(current.session.assertion_for(IDENTITY_AUDIENCE))
    chosen = request.form.get("module_run_id", "").strip()
    timezone = request.form.get("timezone", "").strip() or DEFAULT_TIMEZONE
    upload = request.files.get("timetable_file")
    content = upload.read() if upload is not None else b""
    errors: dict[str, str] = {}
    if chosen not in {run.module_run_id for run in runs}:
        errors["module_run_id"] = "Choose one of the modules you teach."
    if len(timezone) > _MAX_TIMEZONE or not _is_zone(timezone):
        errors["timezone"] = "Enter a time zone such as Europe/London."
    file_format = _format_of(upload.filename or "", content) if upload is not None else None
    if not content:
        errors["timetable_file"] = "Choose the timetable file to upload."
    elif file_format is None:
        errors["timetable_file"] = "The file must be an iCalendar file (.ics) or a CSV file (.csv)."
    if errors or file_format is None:
        return _page(runs, chosen, timezone, errors=errors, status=400)
    try:
        imported = portal().timetable.import_timetable(assertion, file_format, content, chosen, timezone)
    except TimetableRejected as rejected:
        return _page(runs, chosen, timezone, problems=rejected.problems, status=400)
    except PermissionDenied:
        message = "You cannot add sessions to every module this file names. Check the module in each event."
        return _page(runs, chosen, timezone, problems=[message], status=403)
    log.info(
        "timetable imported",
        extra={"fields": {"created": imported.created, "updated": imported.updated, "unchanged": imported.unchanged}},
    )
    return _page(runs, chosen, timezone, imported=imported)
