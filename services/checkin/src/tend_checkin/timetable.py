"""Timetable import: what one imported teaching session is, and the checks every format shares.

Only what check-in needs is kept from a timetable: the event's UID, its module run, room, start and end, and
optional campus network ranges. Titles, descriptions, organisers and attendees are never read, so no name of a
member of staff or a student reaches checkin from a timetable export.
"""

from __future__ import annotations

import zoneinfo
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, tzinfo

MAX_FILE_BYTES = 2 * 1024 * 1024
MAX_SESSIONS = 5_000
MAX_UID_LENGTH = 255
MAX_ROOM_LENGTH = 100
MAX_MODULE_RUN_ID_LENGTH = 100
MAX_DURATION = timedelta(hours=10)
# A timetable covers an academic year; anything further away is a mistake in the export.
MAX_DISTANCE = timedelta(days=400)
# Errors reported per rejected file; the rest are summarised so the message stays readable.
MAX_REPORTED_ERRORS = 50


@dataclass(frozen=True)
class TimetableEntry:
    """One teaching session as a timetable describes it."""

    # Where in the file it starts (1-based), for error messages.
    line: int
    uid: str
    module_run_id: str
    room: str
    starts_at: datetime
    ends_at: datetime
    allowed_networks: tuple[str, ...] = ()


@dataclass(frozen=True)
class LineError:
    line: int
    message: str

    def __str__(self) -> str:
        return f"line {self.line}: {self.message}"


class TimetableRejected(Exception):
    """The file was rejected whole; `errors` name every bad line found."""

    def __init__(self, errors: Sequence[LineError]) -> None:
        self.errors = list(errors)
        shown = "; ".join(str(error) for error in self.errors[:MAX_REPORTED_ERRORS])
        more = len(self.errors) - MAX_REPORTED_ERRORS
        super().__init__(shown + (f"; and {more} more" if more > 0 else ""))


@dataclass(frozen=True)
class ImportOptions:
    """What the request adds to the file."""

    # For entries that name no module run.
    default_module_run_id: str = ""
    # iCalendar CATEGORIES value or first word of SUMMARY -> module run id.
    module_run_by_label: Mapping[str, str] = field(default_factory=dict)
    # Zone of times given without one.
    timezone: tzinfo = UTC
    # For entries that name no network ranges.
    allowed_networks: tuple[str, ...] = ()


@dataclass(frozen=True)
class ParsedTimetable:
    entries: list[TimetableEntry]
    # Events that are not teaching sessions (all-day, cancelled), skipped by design.
    skipped: int = 0


def check_entry(entry: TimetableEntry, now: datetime) -> list[str]:
    """What is wrong with an entry whatever its format; empty if nothing."""
    problems = []
    if not entry.uid:
        problems.append("the event has no UID")
    elif len(entry.uid) > MAX_UID_LENGTH:
        problems.append(f"the UID is longer than {MAX_UID_LENGTH} characters")
    if not entry.module_run_id:
        problems.append("no module run: name one (see docs/checkin.md) or give a default for the file")
    elif len(entry.module_run_id) > MAX_MODULE_RUN_ID_LENGTH:
        problems.append(f"the module run id is longer than {MAX_MODULE_RUN_ID_LENGTH} characters")
    if not entry.room:
        problems.append("no room (LOCATION in iCalendar, the room column in CSV)")
    elif len(entry.room) > MAX_ROOM_LENGTH:
        problems.append(f"the room is longer than {MAX_ROOM_LENGTH} characters")
    if entry.ends_at <= entry.starts_at:
        problems.append("the session ends before it starts")
    elif entry.ends_at - entry.starts_at > MAX_DURATION:
        problems.append("the session is longer than 10 hours")
    if abs(entry.starts_at - now) > MAX_DISTANCE:
        problems.append("the session is more than 400 days from today")
    return problems


def check_entries(entries: Sequence[TimetableEntry], now: datetime, errors: list[LineError]) -> None:
    """Adds the shared checks' findings to `errors`, including a UID used twice in one file."""
    if len(entries) > MAX_SESSIONS:
        errors.append(LineError(entries[MAX_SESSIONS].line, f"more than {MAX_SESSIONS} sessions in one file"))
    first_line: dict[str, int] = {}
    for entry in entries:
        errors.extend(LineError(entry.line, problem) for problem in check_entry(entry, now))
        if entry.uid in first_line:
            errors.append(LineError(entry.line, f"the UID is used twice (first on line {first_line[entry.uid]})"))
        first_line.setdefault(entry.uid, entry.line)


def resolve_zone(name: str) -> tzinfo | None:
    try:
        return zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        return None
