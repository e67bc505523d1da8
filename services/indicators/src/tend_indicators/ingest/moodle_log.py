"""Moodle's course log export (Reports > Logs > Download, CSV), with its quirks: old Mac line endings (CR only) as
well as LF and CRLF, and times such as "11 May, 09:44" with no year, resolved against the academic year the export
belongs to (a day on or after the year's first day falls in its first calendar year, any other in the next), in the
institution's time zone.

Who did it: the standard export names users by full name only ("User full name"). A full name is not an identifier
(two students share one; one student's name changes), and mapping by name would mean sending names to identity, so
this importer never does: it maps a user name (or e-mail) column, "Username" by default, which a site adds to its
export (a custom report, or a log export with the identity field enabled). A file without that column is refused
whole with a message saying so. Rows with no user (a "-") are skipped; rows of users identity does not know as
students (staff) are skipped and counted.

Kept per row: the pseudonym, the time, and the component and event name as the activity (for example "File: Course
module viewed"). The description, the event context, the IP address and the names are not kept. The idempotency key
is a digest of the pseudonym and the row's fields, with a count of identical rows (the export has minute
resolution), so importing the same file again changes nothing.
"""

from __future__ import annotations

import csv
import io
import re
import zoneinfo
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, date, datetime

from psycopg_pool import ConnectionPool

from tend_indicators.directory import Directory, IdentifierKind
from tend_indicators.ingest.mapping import map_identifiers
from tend_indicators.ingest.problems import Problem, RejectedInput
from tend_indicators.ingest.records import EngagementRecord, digest, store_records
from tend_indicators.ingest.reference import ensure_module_runs

TIME_COLUMN = "Time"
COMPONENT_COLUMN = "Component"
EVENT_COLUMN = "Event name"
CONTEXT_COLUMN = "Event context"
ORIGIN_COLUMN = "Origin"
_TIME = re.compile(r"\s*(\d{1,2})\s+([A-Za-z]{3,9})\.?(?:\s+(\d{4}))?,\s*(\d{1,2}):(\d{2})(?::(\d{2}))?\s*")
_MONTHS = {
    name: number
    for number, name in enumerate(
        ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"], 1
    )
}


@dataclass(frozen=True)
class MoodleLogOptions:
    module_run_id: str
    # The first day of the academic year the export belongs to, for example 2017-09-01.
    academic_year_starts_on: date
    timezone: str = "Europe/London"
    identifier_column: str = "Username"
    identifier_kind: IdentifierKind = IdentifierKind.USERNAME


@dataclass(frozen=True)
class LogRow:
    line: int
    identifier: str
    occurred_at: datetime
    activity: str
    # The row's fields other than the user, for its idempotency key.
    content: str


@dataclass(frozen=True)
class MoodleImportResult:
    rows: int
    stored: int
    already_stored: int
    without_user: int
    unknown_students: int


def decode(raw: bytes) -> str:
    text = raw.decode("utf-8-sig", errors="strict")
    return text


def resolve_time(value: str, options: MoodleLogOptions, zone: zoneinfo.ZoneInfo) -> datetime | None:
    match = _TIME.fullmatch(value)
    if match is None:
        return None
    day, month_name, year, hour, minute, second = match.groups()
    month = _MONTHS.get(month_name[:3].lower())
    if month is None:
        return None
    start = options.academic_year_starts_on
    if year is None:
        year_value = start.year if (month, int(day)) >= (start.month, start.day) else start.year + 1
    else:
        year_value = int(year)
    try:
        local = datetime(year_value, month, int(day), int(hour), int(minute), int(second or 0), tzinfo=zone)
    except ValueError:
        return None
    return local.astimezone(UTC)


def read_rows(text: str, options: MoodleLogOptions) -> tuple[list[LogRow], int]:
    """The rows with a user, and how many had none; RejectedInput names every bad line (nothing is stored)."""
    reader = csv.reader(io.StringIO(text, newline=""))
    header = next(reader, None)
    if header is None:
        raise RejectedInput([Problem("file", "", "is empty")])
    columns = {name.strip(): index for index, name in enumerate(header)}
    missing = [c for c in (TIME_COLUMN, COMPONENT_COLUMN, EVENT_COLUMN) if c not in columns]
    if options.identifier_column not in columns:
        raise RejectedInput(
            [
                Problem(
                    "header",
                    "",
                    f"has no {options.identifier_column!r} column. This export names people by full name only, and"
                    " Tend does not map people by name: add a user name column to the export (see"
                    " docs/indicators.md) or name the column that holds one.",
                )
            ]
        )
    if missing:
        raise RejectedInput([Problem("header", "", f"missing column {name!r}") for name in missing])
    zone = zoneinfo.ZoneInfo(options.timezone)
    rows: list[LogRow] = []
    problems: list[Problem] = []
    without_user = 0
    for line, fields in enumerate(reader, start=2):
        if not any(field.strip() for field in fields):
            continue
        if len(fields) != len(header):
            problems.append(Problem(f"line {line}", "", f"has {len(fields)} fields, the header {len(header)}"))
            continue
        identifier = fields[columns[options.identifier_column]].strip()
        if identifier in ("", "-"):
            without_user += 1
            continue
        occurred_at = resolve_time(fields[columns[TIME_COLUMN]], options, zone)
        if occurred_at is None:
            problems.append(Problem(f"line {line}", "", 'Time is not a Moodle time such as "11 May, 09:44"'))
            continue
        component = fields[columns[COMPONENT_COLUMN]].strip()
        event_name = fields[columns[EVENT_COLUMN]].strip()
        others = [fields[i] for name, i in sorted(columns.items()) if name != options.identifier_column]
        rows.append(
            LogRow(
                line=line,
                identifier=identifier.lower() if options.identifier_kind is IdentifierKind.EMAIL else identifier,
                occurred_at=occurred_at,
                activity=f"{component}: {event_name}"[:200],
                content="\x1f".join(others),
            )
        )
    if problems:
        raise RejectedInput(problems)
    return rows, without_user


def import_log(pool: ConnectionPool, directory: Directory, raw: bytes, options: MoodleLogOptions) -> MoodleImportResult:
    try:
        text = decode(raw)
    except UnicodeDecodeError as exc:
        raise RejectedInput([Problem("file", "", "is not UTF-8 text")]) from exc
    rows, without_user = read_rows(text, options)
    pseudonyms = map_identifiers(directory, ((options.identifier_kind, row.identifier) for row in rows))
    occurrences: Counter[str] = Counter()
    records: list[EngagementRecord] = []
    unknown = 0
    for row in rows:
        pseudonym = pseudonyms.get((options.identifier_kind, row.identifier))
        if pseudonym is None:
            unknown += 1
            continue
        natural = f"{pseudonym}\x1f{row.content}"
        occurrences[natural] += 1
        records.append(
            EngagementRecord(
                event_key=f"moodle:{options.module_run_id}:{digest(natural)}:{occurrences[natural]}",
                student_pseudonym=pseudonym,
                module_run_id=options.module_run_id,
                source="vle",
                activity=row.activity,
                occurred_at=row.occurred_at,
            )
        )
    with pool.connection() as conn, conn.transaction(), conn.cursor() as cur:
        ensure_module_runs(cur, [options.module_run_id])
        stored = store_records(cur, records, options.timezone)
    return MoodleImportResult(len(rows), stored, len(records) - stored, without_user, unknown)
