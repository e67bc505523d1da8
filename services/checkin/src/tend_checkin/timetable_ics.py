"""iCalendar (RFC 5545) timetables, as timetabling systems export them: one VEVENT per teaching session.

A small reader for exactly what check-in needs: content lines are unfolded, each VEVENT's UID, DTSTART, DTEND (or
DURATION), LOCATION, CATEGORIES, SUMMARY's first word and Tend's own X-TEND-MODULE-RUN and X-TEND-NETWORKS
properties are read, and everything else (descriptions, organisers, attendees, alarms) is ignored. Times may be UTC
("...Z"), carry a TZID naming an IANA zone, or be floating (the request's zone). All-day and cancelled events are
skipped; repeating events (RRULE) are refused, since each occurrence must be its own session with its own UID.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, tzinfo

from tend_checkin.networks import normalise_networks
from tend_checkin.timetable import (
    ImportOptions,
    LineError,
    ParsedTimetable,
    TimetableEntry,
    TimetableRejected,
    check_entries,
    resolve_zone,
)

MODULE_RUN_PROPERTY = "X-TEND-MODULE-RUN"
NETWORKS_PROPERTY = "X-TEND-NETWORKS"

_DATE_TIME = re.compile(r"^(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})(Z?)$")
_DURATION = re.compile(r"^P(?:(\d+)W)?(?:(\d+)D)?(?:T(?:(\d+)H)?(?:(\d+)M)?(?:(\d+)S)?)?$")


class _BadProperty(ValueError):
    """A property's value is wrong; reported on the property's own line."""

    def __init__(self, line: int, message: str) -> None:
        super().__init__(message)
        self.line = line


@dataclass(frozen=True)
class ContentLine:
    line: int
    name: str
    params: dict[str, str]
    value: str


@dataclass
class _Event:
    line: int
    properties: dict[str, ContentLine] = field(default_factory=dict)
    categories: list[str] = field(default_factory=list)


def unfold(text: str) -> list[tuple[int, str]]:
    """Logical lines with the number of the physical line each starts on; a line starting with a space or tab
    continues the one before (RFC 5545 section 3.1)."""
    logical: list[tuple[int, str]] = []
    for number, raw in enumerate(text.splitlines(), start=1):
        if raw[:1] in {" ", "\t"} and logical:
            start, so_far = logical[-1]
            logical[-1] = (start, so_far + raw[1:])
        elif raw.strip():
            logical.append((number, raw))
    return logical


def parse_content_line(number: int, text: str) -> ContentLine:
    """NAME;PARAM=VALUE;...:VALUE, with quoted parameter values that may hold ':' or ';'."""
    in_quotes = False
    colon = -1
    for index, char in enumerate(text):
        if char == '"':
            in_quotes = not in_quotes
        elif char == ":" and not in_quotes:
            colon = index
            break
    if colon <= 0:
        raise ValueError("not a content line (NAME:VALUE)")
    head, value = text[:colon], text[colon + 1 :]
    parts = re.findall(r'(?:[^;"]|"[^"]*")+', head)
    name = parts[0].strip().upper()
    params = {}
    for part in parts[1:]:
        key, _, param_value = part.partition("=")
        params[key.strip().upper()] = param_value.strip().strip('"')
    return ContentLine(number, name, params, value)


def unescape_text(value: str) -> str:
    return re.sub(r"\\([\\;,nN])", lambda m: "\n" if m.group(1) in "nN" else m.group(1), value)


def _date_time(prop: ContentLine, options: ImportOptions) -> datetime | None:
    """The time; None for a date without a time (an all-day event)."""
    if prop.params.get("VALUE", "").upper() == "DATE":
        return None
    match = _DATE_TIME.match(prop.value.strip())
    if match is None:
        raise _BadProperty(
            prop.line, f"{prop.name} {prop.value.strip()!r} is not a date and time such as 20261005T090000"
        )
    year, month, day, hour, minute, second, utc = match.groups()
    zone: tzinfo = options.timezone
    if utc:
        zone = UTC
    elif "TZID" in prop.params:
        found = resolve_zone(prop.params["TZID"])
        if found is None:
            raise _BadProperty(
                prop.line, f"unknown time zone {prop.params['TZID']!r}; use an IANA name such as Europe/London"
            )
        zone = found
    return datetime(int(year), int(month), int(day), int(hour), int(minute), int(second), tzinfo=zone)


def _duration(prop: ContentLine) -> timedelta:
    match = _DURATION.match(prop.value.strip())
    if match is None or not any(match.groups()):
        raise _BadProperty(prop.line, f"DURATION {prop.value.strip()!r} is not a duration such as PT1H or PT50M")
    weeks, days, hours, minutes, seconds = (int(group or 0) for group in match.groups())
    return timedelta(weeks=weeks, days=days, hours=hours, minutes=minutes, seconds=seconds)


def _events(lines: list[tuple[int, str]], errors: list[LineError]) -> list[_Event]:
    events: list[_Event] = []
    stack: list[str] = []
    current: _Event | None = None
    saw_calendar = False
    for number, text in lines:
        try:
            prop = parse_content_line(number, text)
        except ValueError as exc:
            errors.append(LineError(number, str(exc)))
            continue
        if prop.name == "BEGIN":
            component = prop.value.strip().upper()
            saw_calendar |= component == "VCALENDAR"
            stack.append(component)
            if component == "VEVENT":
                current = _Event(number)
            continue
        if prop.name == "END":
            component = prop.value.strip().upper()
            if not stack or stack[-1] != component:
                errors.append(LineError(number, f"END:{component} does not close the open component"))
                continue
            stack.pop()
            if component == "VEVENT" and current is not None:
                events.append(current)
                current = None
            continue
        # Only the event's own properties count, not those of an alarm inside it.
        if current is not None and stack and stack[-1] == "VEVENT":
            if prop.name == "CATEGORIES":
                current.categories.extend(unescape_text(v).strip() for v in re.split(r"(?<!\\),", prop.value))
            else:
                current.properties.setdefault(prop.name, prop)
    if not saw_calendar:
        errors.append(LineError(1, "not an iCalendar file (no BEGIN:VCALENDAR)"))
    elif stack:
        errors.append(LineError(lines[-1][0] if lines else 1, f"BEGIN:{stack[-1]} is never closed"))
    return events


def _module_run(event: _Event, options: ImportOptions) -> str:
    own = event.properties.get(MODULE_RUN_PROPERTY)
    if own is not None and own.value.strip():
        return own.value.strip()
    for label in event.categories:
        if label in options.module_run_by_label:
            return options.module_run_by_label[label]
    summary = event.properties.get("SUMMARY")
    if summary is not None:
        words = unescape_text(summary.value).split()
        if words and words[0] in options.module_run_by_label:
            return options.module_run_by_label[words[0]]
    return options.default_module_run_id


def _entry(event: _Event, options: ImportOptions) -> TimetableEntry | None:
    """The event as a session; None for one that is not a teaching session. Raises ValueError if it is bad."""
    props = event.properties
    status = props.get("STATUS")
    if status is not None and status.value.strip().upper() == "CANCELLED":
        return None
    if "RRULE" in props:
        raise _BadProperty(
            props["RRULE"].line, "repeating events (RRULE) are not supported: export each occurrence as its own event"
        )
    if "DTSTART" not in props:
        raise ValueError("the event has no DTSTART")
    starts_at = _date_time(props["DTSTART"], options)
    if starts_at is None:
        return None
    ends_at: datetime | None
    if "DTEND" in props:
        ends_at = _date_time(props["DTEND"], options)
        if ends_at is None:
            raise _BadProperty(props["DTEND"].line, "DTEND is a date but DTSTART a date and time")
    elif "DURATION" in props:
        ends_at = starts_at + _duration(props["DURATION"])
    else:
        raise ValueError("the event has neither DTEND nor DURATION")
    networks_prop = props.get(NETWORKS_PROPERTY)
    networks = options.allowed_networks
    if networks_prop is not None:
        try:
            networks = normalise_networks(networks_prop.value.split(","))
        except ValueError as exc:
            raise _BadProperty(networks_prop.line, f"{NETWORKS_PROPERTY}: {exc}") from None
    return TimetableEntry(
        line=event.line,
        uid=props["UID"].value.strip() if "UID" in props else "",
        module_run_id=_module_run(event, options),
        room=" ".join(unescape_text(props["LOCATION"].value).split()) if "LOCATION" in props else "",
        starts_at=starts_at.astimezone(UTC),
        ends_at=ends_at.astimezone(UTC),
        allowed_networks=networks,
    )


def parse_icalendar(content: bytes, options: ImportOptions, now: datetime) -> ParsedTimetable:
    """The file's teaching sessions; raises TimetableRejected naming every bad line if any is bad."""
    try:
        text = content.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise TimetableRejected([LineError(content[: exc.start].count(b"\n") + 1, "not UTF-8 text")]) from None
    errors: list[LineError] = []
    entries: list[TimetableEntry] = []
    skipped = 0
    for event in _events(unfold(text), errors):
        try:
            entry = _entry(event, options)
        except ValueError as exc:
            errors.append(LineError(getattr(exc, "line", event.line), str(exc)))
            continue
        if entry is None:
            skipped += 1
        else:
            entries.append(entry)
    check_entries(entries, now, errors)
    if errors:
        raise TimetableRejected(sorted(errors, key=lambda error: error.line))
    return ParsedTimetable(entries, skipped)
