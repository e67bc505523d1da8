"""Validation of the staff API's timetable and correction requests: each returns the validated values, or a message
saying what is wrong (naming the field or entry, never echoing a value that could be personal)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from tend.checkin.v1 import checkin_pb2

from tend_checkin.corrections import Correction
from tend_checkin.networks import normalise_networks
from tend_checkin.timetable import MAX_FILE_BYTES, ImportOptions, ParsedTimetable, resolve_zone
from tend_checkin.timetable_csv import parse_csv
from tend_checkin.timetable_ics import parse_icalendar

MAX_CORRECTIONS = 2_000
MAX_PSEUDONYM_LENGTH = 100
MAX_LABELS = 500


@dataclass(frozen=True)
class ValidCorrections:
    session_id: uuid.UUID
    batch_id: uuid.UUID
    corrections: list[Correction]
    reason: str


def import_options(request: checkin_pb2.ImportTimetableRequest, default_zone: str) -> ImportOptions | str:
    zone = resolve_zone(request.timezone or default_zone)
    if zone is None:
        return "timezone must be an IANA time zone such as Europe/London"
    if len(request.module_run_by_label) > MAX_LABELS:
        return f"module_run_by_label may hold at most {MAX_LABELS} labels"
    try:
        networks = normalise_networks(request.allowed_networks)
    except ValueError as exc:
        return f"allowed_networks: {exc}"
    return ImportOptions(
        default_module_run_id=request.module_run_id.strip(),
        module_run_by_label={label.strip(): run.strip() for label, run in request.module_run_by_label.items()},
        timezone=zone,
        allowed_networks=networks,
    )


def parse_timetable(
    request: checkin_pb2.ImportTimetableRequest, options: ImportOptions, now: datetime
) -> ParsedTimetable | str:
    """The parsed file, or a message for a request that is wrong before any line is read. Raises TimetableRejected
    for a file with bad lines."""
    if not request.content:
        return "content is empty: attach the timetable file"
    if len(request.content) > MAX_FILE_BYTES:
        return f"content is larger than {MAX_FILE_BYTES // (1024 * 1024)} MB"
    if request.format == checkin_pb2.TIMETABLE_FORMAT_ICALENDAR:
        return parse_icalendar(request.content, options, now)
    if request.format == checkin_pb2.TIMETABLE_FORMAT_CSV:
        return parse_csv(request.content, options, now)
    return "format must be TIMETABLE_FORMAT_ICALENDAR or TIMETABLE_FORMAT_CSV"


def validate_corrections(request: checkin_pb2.RecordAttendanceCorrectionsRequest) -> ValidCorrections | str:
    try:
        session_id = uuid.UUID(request.session_id)
    except ValueError:
        return "session_id must be a UUID"
    try:
        batch_id = uuid.UUID(request.idempotency_key)
    except ValueError:
        return "idempotency_key must be a UUID, chosen once per form or file"
    if request.reason not in checkin_pb2.CorrectionReason.values() or (
        request.reason == checkin_pb2.CORRECTION_REASON_UNSPECIFIED
    ):
        return "reason is required: one of the CorrectionReason values"
    if not request.entries:
        return "entries is empty: name at least one student"
    if len(request.entries) > MAX_CORRECTIONS:
        return f"at most {MAX_CORRECTIONS} entries per request"
    corrections: list[Correction] = []
    first_index: dict[str, int] = {}
    for index, entry in enumerate(request.entries):
        pseudonym = entry.student_pseudonym.strip()
        if not pseudonym or len(pseudonym) > MAX_PSEUDONYM_LENGTH:
            return f"entries[{index}]: student_pseudonym is required (at most {MAX_PSEUDONYM_LENGTH} characters)"
        if pseudonym in first_index:
            return f"entries[{index}]: the same student as entries[{first_index[pseudonym]}]"
        first_index[pseudonym] = index
        corrections.append(Correction(pseudonym, entry.present))
    reason = checkin_pb2.CorrectionReason.Name(request.reason).removeprefix("CORRECTION_REASON_")
    return ValidCorrections(session_id, batch_id, corrections, reason)
