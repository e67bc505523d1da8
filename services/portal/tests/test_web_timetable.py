"""Timetable import: module staff upload an .ics or CSV file; checkin imports it whole or names every bad line."""

from __future__ import annotations

import io
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import grpc
import pytest
from tend.checkin.v1 import checkin_pb2, checkin_pb2_grpc

from services.portal.tests.conftest import (
    CHECKIN_SERVICE,
    STAFF,
    FakeCheckin,
    PortalBrowser,
    _timestamp,
    abort,
    assertion_for,
    serving,
)
from tend_common.grpc_server import GrpcServer
from tend_portal.timetable_client import problems_in

ICS = b"""BEGIN:VCALENDAR\r
VERSION:2.0\r
BEGIN:VEVENT\r
UID:cs101-w1@timetable.example.ac.uk\r
DTSTART:20261005T090000\r
DTEND:20261005T095000\r
LOCATION:Main Building LT1\r
SUMMARY:CS101 Lecture\r
END:VEVENT\r
END:VCALENDAR\r
"""
START = datetime(2026, 10, 5, 8, 0, tzinfo=UTC)


class ImportingCheckin(FakeCheckin):
    def __init__(self) -> None:
        super().__init__()
        self.imports: list[checkin_pb2.ImportTimetableRequest] = []

    def ImportTimetable(
        self, request: checkin_pb2.ImportTimetableRequest, context: grpc.ServicerContext
    ) -> checkin_pb2.ImportTimetableResponse:
        self.imports.append(request)
        if request.actor_assertion != assertion_for(STAFF, "checkin"):
            abort(context, grpc.StatusCode.PERMISSION_DENIED, "not yours")
        if b"BROKEN" in request.content:
            abort(
                context,
                grpc.StatusCode.INVALID_ARGUMENT,
                "the timetable was not imported: line 4: DTSTART is not a date-time; line 9: DTEND is before DTSTART",
            )
        if b"OTHER-MODULE" in request.content:
            abort(context, grpc.StatusCode.PERMISSION_DENIED, "not allowed on run-other")
        session = checkin_pb2.TeachingSession(
            session_id="0b8e1c9a-5d1f-4c8e-9a53-2f0c1d7e6b4a",
            module_run_id=request.module_run_id,
            room="Main Building LT1",
            starts_at=_timestamp(START),
            ends_at=_timestamp(START + timedelta(minutes=50)),
        )
        return checkin_pb2.ImportTimetableResponse(created=1, updated=0, unchanged=0, sessions=[session])


@pytest.fixture
def fake_checkin() -> Iterator[tuple[FakeCheckin, GrpcServer]]:
    yield from serving(ImportingCheckin(), checkin_pb2_grpc.add_CheckinServiceServicer_to_server, CHECKIN_SERVICE)


def _imports(checkin: FakeCheckin) -> list[checkin_pb2.ImportTimetableRequest]:
    assert isinstance(checkin, ImportingCheckin)
    return checkin.imports


def _upload(browser: PortalBrowser, content: bytes, filename: str, run: str = "run-cs101") -> tuple[int, str]:
    response = browser.client.post(
        "/timetable",
        data={
            "csrf_token": browser.csrf_token(),
            "module_run_id": run,
            "timezone": "Europe/London",
            "timetable_file": (io.BytesIO(content), filename),
        },
        content_type="multipart/form-data",
    )
    return response.status_code, response.get_data(as_text=True)


def test_the_form_lists_the_modules_the_person_teaches(signed_in_staff: PortalBrowser) -> None:
    page = signed_in_staff.get("/timetable").get_data(as_text=True)
    assert '<option value="run-cs101"' in page
    assert '<label for="timetable_file">' in page
    assert 'enctype="multipart/form-data"' in page


def test_an_ics_file_is_imported_and_what_was_imported_is_shown(
    signed_in_staff: PortalBrowser, checkin: FakeCheckin
) -> None:
    status, page = _upload(signed_in_staff, ICS, "autumn.ics")

    assert status == 200, page
    assert "1 session added, 0 changed, 0 already up to date" in page
    assert "Mon 05 Oct 2026, 08:00" in page
    [sent] = _imports(checkin)
    assert sent.format == checkin_pb2.TIMETABLE_FORMAT_ICALENDAR
    assert sent.content == ICS
    assert (sent.module_run_id, sent.timezone) == ("run-cs101", "Europe/London")
    assert sent.actor_assertion == assertion_for(STAFF, "checkin")


def test_a_csv_file_is_sent_as_csv(signed_in_staff: PortalBrowser, checkin: FakeCheckin) -> None:
    status, _ = _upload(signed_in_staff, b"start,end,room\n2026-10-05 09:00,2026-10-05 09:50,LT1\n", "autumn.csv")
    assert status == 200
    assert _imports(checkin)[0].format == checkin_pb2.TIMETABLE_FORMAT_CSV


def test_every_bad_line_checkin_names_is_shown(signed_in_staff: PortalBrowser, checkin: FakeCheckin) -> None:
    status, page = _upload(signed_in_staff, ICS + b"BROKEN", "autumn.ics")

    assert status == 400
    assert "Nothing in the file was imported" in page
    assert "<li>Line 4: DTSTART is not a date-time</li>" in page
    assert "<li>Line 9: DTEND is before DTSTART</li>" in page


def test_a_file_naming_a_module_the_person_does_not_teach_is_refused(
    signed_in_staff: PortalBrowser, checkin: FakeCheckin
) -> None:
    status, page = _upload(signed_in_staff, ICS + b"OTHER-MODULE", "autumn.ics")
    assert status == 403
    assert "You cannot add sessions to every module this file names" in page


def test_a_module_not_taught_or_a_wrong_file_is_refused_before_asking(
    signed_in_staff: PortalBrowser, checkin: FakeCheckin
) -> None:
    status, page = _upload(signed_in_staff, ICS, "autumn.ics", run="run-someone-elses")
    assert status == 400
    assert "Choose one of the modules you teach." in page
    status, page = _upload(signed_in_staff, b"%PDF-1.7", "timetable.pdf")
    assert status == 400
    assert "must be an iCalendar file (.ics) or a CSV file (.csv)" in page
    assert _imports(checkin) == []


def test_students_cannot_import(signed_in_student: PortalBrowser, checkin: FakeCheckin) -> None:
    assert signed_in_student.get("/timetable").status_code == 403
    status, _ = _upload(signed_in_student, ICS, "autumn.ics")
    assert status == 403
    assert _imports(checkin) == []


def test_checkin_details_become_sentences() -> None:
    assert problems_in("the timetable was not imported: line 2: no UID; line 3: bad") == [
        "Line 2: no UID",
        "Line 3: bad",
    ]
    assert problems_in("content is empty: attach the timetable file") == ["Content is empty: attach the timetable file"]
    assert problems_in("") == ["Checkin did not accept the file."]
