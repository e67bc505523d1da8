"""Reading timetables: iCalendar as timetabling systems export it, and the documented CSV."""

from __future__ import annotations

import zoneinfo
from datetime import UTC, datetime

import pytest

from tend_checkin.timetable import ImportOptions, TimetableRejected
from tend_checkin.timetable_csv import parse_csv
from tend_checkin.timetable_ics import parse_icalendar

NOW = datetime(2026, 9, 1, tzinfo=UTC)
LONDON = zoneinfo.ZoneInfo("Europe/London")
RUN = "7d1f2a9e-1111-4a8e-9f0b-3c2d1e0f9a88"
OTHER_RUN = "0a1b2c3d-2222-4a8e-9f0b-3c2d1e0f9a88"

# Folded lines, a VTIMEZONE, an alarm inside an event, escaped text, an organiser and attendee (names never read),
# a UTC time, a TZID time, a floating time and a DURATION, as exports from timetabling systems carry them.
CALENDAR = f"""BEGIN:VCALENDAR\r
VERSION:2.0\r
PRODID:-//Scientia//Syllabus Plus//EN\r
BEGIN:VTIMEZONE\r
TZID:Europe/London\r
BEGIN:STANDARD\r
DTSTART:19701025T020000\r
TZOFFSETFROM:+0100\r
TZOFFSETTO:+0000\r
END:STANDARD\r
END:VTIMEZONE\r
BEGIN:VEVENT\r
UID:evt-0001@timetable.example.ac.uk\r
DTSTART;TZID=Europe/London:20261005T090000\r
DTEND;TZID=Europe/London:20261005T105000\r
SUMMARY:CS101 Lecture\r
DESCRIPTION:Dr Ada Lovelace\\, bring laptops\r
ORGANIZER;CN="Lovelace, Ada":mailto:ada@example.ac.uk\r
ATTENDEE;CN=Some Student:mailto:student@example.ac.uk\r
LOCATION:Main Building\\, Lecture Theatre\r
  1\r
X-TEND-MODULE-RUN:{RUN}\r
X-TEND-NETWORKS:192.0.2.0/24, 2001:db8::/32\r
BEGIN:VALARM\r
ACTION:DISPLAY\r
UID:alarm-uid-not-the-event\r
TRIGGER:-PT15M\r
END:VALARM\r
END:VEVENT\r
BEGIN:VEVENT\r
UID:evt-0002@timetable.example.ac.uk\r
DTSTART:20261006T130000Z\r
DURATION:PT50M\r
SUMMARY:CS102 Lab\r
CATEGORIES:Practical,CS102\r
LOCATION:Lab 2\r
END:VEVENT\r
BEGIN:VEVENT\r
UID:evt-0003@timetable.example.ac.uk\r
DTSTART:20261007T140000\r
DTEND:20261007T150000\r
SUMMARY:CS101 Seminar\r
LOCATION:Room 1.01\r
END:VEVENT\r
BEGIN:VEVENT\r
UID:evt-0004@timetable.example.ac.uk\r
DTSTART;VALUE=DATE:20261012\r
SUMMARY:Reading week\r
END:VEVENT\r
BEGIN:VEVENT\r
UID:evt-0005@timetable.example.ac.uk\r
DTSTART:20261008T090000Z\r
DTEND:20261008T100000Z\r
STATUS:CANCELLED\r
LOCATION:Room 1.01\r
END:VEVENT\r
END:VCALENDAR\r
"""


def test_icalendar_sessions_are_read() -> None:
    options = ImportOptions(module_run_by_label={"CS102": OTHER_RUN, "CS101": RUN}, timezone=LONDON)
    parsed = parse_icalendar(CALENDAR.encode(), options, NOW)

    first, second, third = parsed.entries
    assert parsed.skipped == 2  # the all-day reading week and the cancelled event
    assert first.uid == "evt-0001@timetable.example.ac.uk"
    assert first.module_run_id == RUN
    assert first.room == "Main Building, Lecture Theatre 1"
    assert first.starts_at == datetime(2026, 10, 5, 8, 0, tzinfo=UTC)  # 09:00 British Summer Time
    assert first.ends_at == datetime(2026, 10, 5, 9, 50, tzinfo=UTC)
    assert first.allowed_networks == ("192.0.2.0/24", "2001:db8::/32")
    assert first.line == 12
    assert (second.module_run_id, second.room) == (OTHER_RUN, "Lab 2")  # by CATEGORIES
    assert (second.starts_at, second.ends_at) == (
        datetime(2026, 10, 6, 13, 0, tzinfo=UTC),
        datetime(2026, 10, 6, 13, 50, tzinfo=UTC),
    )
    assert third.module_run_id == RUN  # by the first word of SUMMARY
    assert third.starts_at == datetime(2026, 10, 7, 13, 0, tzinfo=UTC)  # floating: the request's zone
    # Nothing personal from the event is kept.
    assert "Lovelace" not in repr(parsed)
    assert "student@" not in repr(parsed)


def test_icalendar_errors_name_every_bad_line() -> None:
    bad = CALENDAR.replace("DTEND;TZID=Europe/London:20261005T105000", "DTEND;TZID=Europe/London:20261005T0850")
    bad = bad.replace("DTSTART:20261006T130000Z", "DTSTART;TZID=Mars/Olympus:20261006T130000")
    bad = bad.replace(
        "LOCATION:Room 1.01\r\nEND:VEVENT\r\nBEGIN:VEVENT\r\nUID:evt-0004", "END:VEVENT\r\nBEGIN:VEVENT\r\nUID:evt-0004"
    )

    with pytest.raises(TimetableRejected) as rejected:
        parse_icalendar(bad.encode(), ImportOptions(default_module_run_id=RUN), NOW)

    messages = [str(error) for error in rejected.value.errors]
    assert messages == [
        "line 15: DTEND '20261005T0850' is not a date and time such as 20261005T090000",
        "line 32: unknown time zone 'Mars/Olympus'; use an IANA name such as Europe/London",
        "line 38: no room (LOCATION in iCalendar, the room column in CSV)",
    ]


def test_icalendar_needs_a_module_run_and_refuses_repeats() -> None:
    text = """BEGIN:VCALENDAR
BEGIN:VEVENT
UID:a
DTSTART:20261005T090000Z
DTEND:20261005T100000Z
LOCATION:LT1
END:VEVENT
BEGIN:VEVENT
UID:b
DTSTART:20261005T090000Z
DTEND:20261005T100000Z
RRULE:FREQ=WEEKLY;COUNT=10
LOCATION:LT1
X-TEND-MODULE-RUN:run-1
END:VEVENT
BEGIN:VEVENT
UID:c
DTSTART:20261005T110000Z
DTEND:20261005T100000Z
LOCATION:LT1
X-TEND-MODULE-RUN:run-1
END:VEVENT
END:VCALENDAR
"""
    with pytest.raises(TimetableRejected) as rejected:
        parse_icalendar(text.encode(), ImportOptions(), NOW)

    assert [str(error) for error in rejected.value.errors] == [
        "line 2: no module run: name one (see docs/checkin.md) or give a default for the file",
        "line 12: repeating events (RRULE) are not supported: export each occurrence as its own event",
        "line 16: the session ends before it starts",
    ]


def test_not_a_calendar_is_rejected() -> None:
    with pytest.raises(TimetableRejected, match="line 1: not an iCalendar file"):
        parse_icalendar(b"uid,room\n1,LT1\n", ImportOptions(), NOW)
    with pytest.raises(TimetableRejected, match="line 2: not UTF-8 text"):
        parse_icalendar(b"BEGIN:VCALENDAR\nLOCATION:\xff\n", ImportOptions(), NOW)


CSV = f"""uid,module_run_id,room,starts_at,ends_at,networks,lecturer
s-1,{RUN},Main Building LT1,2026-10-05T09:00,2026-10-05T10:50,192.0.2.0/24,Dr Ada Lovelace
s-2,,"Lab 2, West Wing",2026-10-06 13:00+00:00,2026-10-06 13:50+00:00,,Dr Ada Lovelace
"""


def test_csv_sessions_are_read() -> None:
    parsed = parse_csv(CSV.encode(), ImportOptions(default_module_run_id=OTHER_RUN, timezone=LONDON), NOW)

    first, second = parsed.entries
    assert (first.uid, first.module_run_id, first.room, first.line) == ("s-1", RUN, "Main Building LT1", 2)
    assert first.starts_at == datetime(2026, 10, 5, 8, 0, tzinfo=UTC)
    assert first.allowed_networks == ("192.0.2.0/24",)
    assert (second.module_run_id, second.room) == (OTHER_RUN, "Lab 2, West Wing")
    assert second.starts_at == datetime(2026, 10, 6, 13, 0, tzinfo=UTC)
    assert "Lovelace" not in repr(parsed)


def test_csv_errors_name_every_bad_line() -> None:
    text = (
        CSV
        + "s-3,run-1,LT1,tomorrow,2026-10-06T10:00,,x\n"
        + "s-4,run-1,LT1,2026-10-06T09:00\n"
        + "s-1,run-1,,2026-10-06T09:00,2026-10-06T10:00,,\n"
    )

    with pytest.raises(TimetableRejected) as rejected:
        parse_csv(text.encode(), ImportOptions(), NOW)

    assert [str(error) for error in rejected.value.errors] == [
        "line 3: no module run: name one (see docs/checkin.md) or give a default for the file",
        "line 4: starts_at 'tomorrow' is not a time such as 2026-10-05T09:00",
        "line 5: 4 values where the header names 7 columns",
        "line 6: no room (LOCATION in iCalendar, the room column in CSV)",
        "line 6: the UID is used twice (first on line 2)",
    ]


def test_csv_needs_its_columns() -> None:
    with pytest.raises(TimetableRejected, match="line 1: missing column\\(s\\): starts_at, ends_at"):
        parse_csv(b"uid,room\ns-1,LT1\n", ImportOptions(), NOW)
    with pytest.raises(TimetableRejected, match="line 1: the file is empty"):
        parse_csv(b"", ImportOptions(), NOW)
