"""CSV timetables: one teaching session per row, with a header row naming the columns.

Columns (any order, names case-insensitive): `uid`, `room`, `starts_at`, `ends_at` are required; `module_run_id`
and `networks` (space-separated CIDR ranges) are optional. Times are ISO 8601 ("2026-10-05T09:00" or
"2026-10-05 09:00", with an optional offset such as "+01:00" or "Z"); a time without an offset is in the request's
time zone. Other columns are ignored and never stored.
"""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime

from tend_checkin.networks import normalise_networks
from tend_checkin.timetable import (
    ImportOptions,
    LineError,
    ParsedTimetable,
    TimetableEntry,
    TimetableRejected,
    check_entries,
)

REQUIRED_COLUMNS = ("uid", "room", "starts_at", "ends_at")
OPTIONAL_COLUMNS = ("module_run_id", "networks")


def _time(text: str, column: str, options: ImportOptions) -> datetime:
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        raise ValueError(f"{column} {text.strip()!r} is not a time such as 2026-10-05T09:00") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=options.timezone)
    return moment.astimezone(UTC)


def _entry(line: int, row: dict[str, str], options: ImportOptions) -> TimetableEntry:
    networks = options.allowed_networks
    if row.get("networks", "").strip():
        networks = normalise_networks(row["networks"].split())
    return TimetableEntry(
        line=line,
        uid=row["uid"].strip(),
        module_run_id=row.get("module_run_id", "").strip() or options.default_module_run_id,
        room=" ".join(row["room"].split()),
        starts_at=_time(row["starts_at"], "starts_at", options),
        ends_at=_time(row["ends_at"], "ends_at", options),
        allowed_networks=networks,
    )


def parse_csv(content: bytes, options: ImportOptions, now: datetime) -> ParsedTimetable:
    """The file's teaching sessions; raises TimetableRejected naming every bad line if any is bad."""
    try:
        text = content.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise TimetableRejected([LineError(content[: exc.start].count(b"\n") + 1, "not UTF-8 text")]) from None
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = [name.strip().lower() for name in next(reader)]
    except StopIteration:
        raise TimetableRejected([LineError(1, "the file is empty; the first line must name the columns")]) from None
    except csv.Error as exc:
        raise TimetableRejected([LineError(1, f"not valid CSV: {exc}")]) from None
    missing = [column for column in REQUIRED_COLUMNS if column not in header]
    if missing:
        raise TimetableRejected([LineError(1, "missing column(s): " + ", ".join(missing))])
    errors: list[LineError] = []
    entries: list[TimetableEntry] = []
    while True:
        try:
            values = next(reader)
        except StopIteration:
            break
        except csv.Error as exc:
            errors.append(LineError(reader.line_num, f"not valid CSV: {exc}"))
            break
        line = reader.line_num
        if not any(value.strip() for value in values):
            continue
        if len(values) != len(header):
            errors.append(LineError(line, f"{len(values)} values where the header names {len(header)} columns"))
            continue
        try:
            entries.append(_entry(line, dict(zip(header, values, strict=True)), options))
        except ValueError as exc:
            errors.append(LineError(line, str(exc)))
    check_entries(entries, now, errors)
    if errors:
        raise TimetableRejected(sorted(errors, key=lambda error: error.line))
    return ParsedTimetable(entries)
