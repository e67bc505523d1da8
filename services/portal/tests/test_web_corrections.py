"""Attendance correction pages: the class list comes from identity with names for the allowed person only, a CSV of
student numbers is mapped to pseudonyms through identity, and checkin receives pseudonyms only."""

from __future__ import annotations

import io
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import grpc
import pytest
from google.protobuf.timestamp_pb2 import Timestamp
from tend.checkin.v1 import checkin_pb2, checkin_pb2_grpc
from tend.identity.v1 import identity_pb2, identity_pb2_grpc

from services.portal.tests.conftest import (
    CHECKIN_SERVICE,
    IDENTITY_SERVICE,
    STAFF,
    FakeCheckin,
    FakeIdentity,
    PortalBrowser,
    abort,
    assertion_for,
    serving,
)
from tend_common.grpc_server import GrpcServer

RUN = "run-cs101"
SESSION_ID = str(uuid.uuid4())
# Canary values of the class: they may appear on the correction page, never in what reaches checkin.
CLASS = [
    identity_pb2.VisibleStudent(pseudonym="p_aaa111", display_name="Ada Canary-0a1", student_number="CN0A1"),
    identity_pb2.VisibleStudent(pseudonym="p_bbb222", display_name="Bea Canary-0b2", student_number="CN0B2"),
    identity_pb2.VisibleStudent(pseudonym="p_ccc333", display_name="Cy Canary-0c3", student_number="CN0C3"),
]
OUTSIDER_NUMBER = "CN9ZZ"  # a real student, but not on this module


class CorrectingIdentity(FakeIdentity):
    def ListVisibleStudents(
        self, request: identity_pb2.ListVisibleStudentsRequest, context: grpc.ServicerContext
    ) -> identity_pb2.ListVisibleStudentsResponse:
        allowed = (
            # Identity accepts from the portal only assertions issued for identity.
            request.actor_assertion == assertion_for(STAFF, "identity")
            and request.purpose == identity_pb2.PURPOSE_ATTENDANCE_CORRECTION
            and request.module_run_id == RUN
        )
        if not allowed:
            return identity_pb2.ListVisibleStudentsResponse(detail=identity_pb2.DETAIL_LEVEL_NONE)
        return identity_pb2.ListVisibleStudentsResponse(detail=identity_pb2.DETAIL_LEVEL_INDIVIDUAL, students=CLASS)

    def MapToPseudonyms(
        self, request: identity_pb2.MapToPseudonymsRequest, context: grpc.ServicerContext
    ) -> identity_pb2.MapToPseudonymsResponse:
        if request.kind != identity_pb2.IDENTIFIER_KIND_STUDENT_NUMBER:
            abort(context, grpc.StatusCode.INVALID_ARGUMENT, "kind")
        known = {s.student_number: s.pseudonym for s in CLASS} | {OUTSIDER_NUMBER: "p_outsider"}
        return identity_pb2.MapToPseudonymsResponse(
            pseudonyms={number: known[number] for number in request.identifiers if number in known}
        )


class CorrectingCheckin(FakeCheckin):
    def __init__(self) -> None:
        super().__init__()
        self.corrections: list[checkin_pb2.RecordAttendanceCorrectionsRequest] = []

    def ListSessions(
        self, request: checkin_pb2.ListSessionsRequest, context: grpc.ServicerContext
    ) -> checkin_pb2.ListSessionsResponse:
        if request.actor_assertion != assertion_for(STAFF, "checkin") or request.module_run_id != RUN:
            abort(context, grpc.StatusCode.PERMISSION_DENIED, "not yours")
        start = Timestamp()
        start.FromDatetime(datetime(2026, 10, 5, 9, 0, tzinfo=UTC))
        end = Timestamp()
        end.FromDatetime(datetime(2026, 10, 5, 9, 0, tzinfo=UTC) + timedelta(minutes=50))
        session = checkin_pb2.TeachingSession(
            session_id=SESSION_ID, module_run_id=RUN, room="Main Building LT1", starts_at=start, ends_at=end
        )
        return checkin_pb2.ListSessionsResponse(sessions=[session])

    def RecordAttendanceCorrections(
        self, request: checkin_pb2.RecordAttendanceCorrectionsRequest, context: grpc.ServicerContext
    ) -> checkin_pb2.RecordAttendanceCorrectionsResponse:
        self.corrections.append(request)
        return checkin_pb2.RecordAttendanceCorrectionsResponse(recorded=len(request.entries))


@pytest.fixture
def fake_identity() -> Iterator[tuple[FakeIdentity, GrpcServer]]:
    yield from serving(CorrectingIdentity(), identity_pb2_grpc.add_IdentityServiceServicer_to_server, IDENTITY_SERVICE)


@pytest.fixture
def fake_checkin() -> Iterator[tuple[FakeCheckin, GrpcServer]]:
    yield from serving(CorrectingCheckin(), checkin_pb2_grpc.add_CheckinServiceServicer_to_server, CHECKIN_SERVICE)


PATH = f"/attendance/sessions/{SESSION_ID}?run={RUN}"


def _sent(checkin: FakeCheckin) -> list[checkin_pb2.RecordAttendanceCorrectionsRequest]:
    assert isinstance(checkin, CorrectingCheckin)
    return checkin.corrections


def _no_personal_data(request: checkin_pb2.RecordAttendanceCorrectionsRequest) -> None:
    sent = request.SerializeToString()
    for student in CLASS:
        assert student.display_name.encode() not in sent
        assert student.student_number.encode() not in sent


def test_staff_choose_a_module_and_a_session(signed_in_staff: PortalBrowser) -> None:
    runs = signed_in_staff.get("/attendance").get_data(as_text=True)
    assert f'href="/attendance/runs/{RUN}"' in runs
    sessions = signed_in_staff.get(f"/attendance/runs/{RUN}").get_data(as_text=True)
    assert f"/attendance/sessions/{SESSION_ID}?run={RUN}" in sessions
    assert "Main Building LT1" in sessions


def test_ticking_the_class_list_sends_pseudonyms_only(signed_in_staff: PortalBrowser, checkin: FakeCheckin) -> None:
    page = signed_in_staff.get(PATH).get_data(as_text=True)
    assert "Ada Canary-0a1" in page
    assert "CN0B2" in page

    response = signed_in_staff.post(
        PATH,
        {"reason": "NO_DEVICE", "mark-p_aaa111": "present", "mark-p_bbb222": "absent", "mark-p_ccc333": ""},
    )

    assert response.status_code == 200, response.get_data(as_text=True)
    assert "2 corrections recorded" in response.get_data(as_text=True)
    [sent] = _sent(checkin)
    assert sent.session_id == SESSION_ID
    assert sent.reason == checkin_pb2.CORRECTION_REASON_NO_DEVICE
    assert [(e.student_pseudonym, e.present) for e in sent.entries] == [("p_aaa111", True), ("p_bbb222", False)]
    assert sent.actor_assertion == assertion_for(STAFF, "checkin")
    uuid.UUID(sent.idempotency_key)
    _no_personal_data(sent)


def test_a_csv_of_student_numbers_is_mapped_through_identity(
    signed_in_staff: PortalBrowser, checkin: FakeCheckin
) -> None:
    csv_file = (io.BytesIO(b"student_number,attendance\nCN0A1\nCN0C3,absent\n"), "register.csv")

    response = signed_in_staff.client.post(
        PATH,
        data={
            "csrf_token": signed_in_staff.csrf_token(),
            "reason": "REGISTER_TAKEN_OTHERWISE",
            "csv_kind": "student_number",
            "csv_file": csv_file,
        },
        content_type="multipart/form-data",
    )

    assert response.status_code == 200, response.get_data(as_text=True)
    [sent] = _sent(checkin)
    assert [(e.student_pseudonym, e.present) for e in sent.entries] == [("p_aaa111", True), ("p_ccc333", False)]
    _no_personal_data(sent)


def test_a_bad_list_is_refused_whole_with_line_numbers(signed_in_staff: PortalBrowser, checkin: FakeCheckin) -> None:
    response = signed_in_staff.post(
        PATH,
        {
            "reason": "NO_DEVICE",
            "csv_kind": "student_number",
            "csv_text": f"CN0A1\n{OUTSIDER_NUMBER}\nCN0B2,maybe\nCNNOPE\n",
        },
    )

    page = response.get_data(as_text=True)
    assert response.status_code == 400
    assert "Line 2: no student on this module has that student number." in page
    assert "Line 3: the second column must be present or absent." in page
    assert "Line 4: no student on this module has that student number." in page
    assert _sent(checkin) == []


def test_a_reason_and_at_least_one_mark_are_needed(signed_in_staff: PortalBrowser, checkin: FakeCheckin) -> None:
    response = signed_in_staff.post(PATH, {"mark-p_aaa111": "present"})
    assert response.status_code == 400
    assert "Choose the reason for the correction." in response.get_data(as_text=True)
    response = signed_in_staff.post(PATH, {"reason": "NO_DEVICE"})
    assert "Mark at least one student present or absent" in response.get_data(as_text=True)
    assert _sent(checkin) == []


def test_a_resubmitted_form_carries_the_same_idempotency_key(
    signed_in_staff: PortalBrowser, checkin: FakeCheckin
) -> None:
    form = {"reason": "ARRIVED_LATE", "mark-p_aaa111": "present", "idempotency_key": str(uuid.uuid4())}
    signed_in_staff.post(PATH, form)
    signed_in_staff.post(PATH, form)

    first, second = _sent(checkin)
    assert first.idempotency_key == second.idempotency_key == form["idempotency_key"]


def test_students_and_other_modules_are_refused(browser: PortalBrowser, checkin: FakeCheckin) -> None:
    from services.portal.tests.conftest import STUDENT

    browser.sign_in(STUDENT)
    assert browser.get(PATH).status_code == 403
    assert browser.post(PATH, {"reason": "NO_DEVICE", "mark-p_aaa111": "present"}).status_code == 403
    assert _sent(checkin) == []
