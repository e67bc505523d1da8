"""ImportTimetable, ListSessions and RecordAttendanceCorrections through real gRPC, against a real database and a fake
identity: idempotent re-import, whole-file rejection, access decided by identity, and corrections stored with their
events and audit records in one transaction."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import grpc
import pytest
from tend.audit.v1 import events_pb2 as audit_events_pb2
from tend.checkin.v1 import checkin_pb2
from tend.checkin.v1 import events_pb2 as checkin_events_pb2

from services.checkin.tests.grpc_harness import MODULE_RUN, OPEN, STAFF, Api, open_request, status_of

CREATE = "teaching_session.create"
CORRECT = "attendance.correct"
OTHER_RUN = "0a1b2c3d-2222-4a8e-9f0b-3c2d1e0f9a88"

CSV = f"""uid,module_run_id,room,starts_at,ends_at
tt-1,{MODULE_RUN},Main Building LT1,2026-10-05T09:00,2026-10-05T09:50
tt-2,{MODULE_RUN},Main Building LT1,2026-10-12T09:00,2026-10-12T09:50
"""

ICS = """BEGIN:VCALENDAR
BEGIN:VEVENT
UID:ics-1@timetable.example.ac.uk
DTSTART;TZID=Europe/London:20261006T140000
DTEND;TZID=Europe/London:20261006T150000
SUMMARY:CS101 Seminar
LOCATION:Room 1.01
END:VEVENT
END:VCALENDAR
"""


def import_request(api: Api, content: str, fmt: int = checkin_pb2.TIMETABLE_FORMAT_CSV, **fields: object) -> object:
    return checkin_pb2.ImportTimetableRequest(
        actor_assertion=api.assertion(),
        format=fmt,  # type: ignore[arg-type]
        content=content.encode(),
        **fields,  # type: ignore[arg-type]
    )


def test_import_creates_sessions_and_a_re_import_changes_nothing(api: Api) -> None:
    api.identity.allow(STAFF, CREATE, "module_run", MODULE_RUN)

    first = api.stub.ImportTimetable(import_request(api, CSV, timezone="Europe/London"))

    assert (first.created, first.updated, first.unchanged) == (2, 0, 0)
    assert [s.timetable_uid for s in first.sessions] == ["tt-1", "tt-2"]
    assert first.sessions[0].starts_at.ToDatetime(tzinfo=UTC) == datetime(2026, 10, 5, 8, 0, tzinfo=UTC)
    audits = [
        audit_events_pb2.AuditEvent.FromString(body)
        for (body,) in api.rows("SELECT body FROM outbox WHERE routing_key = 'audit.recorded.v1'")
        if isinstance(body, bytes)
    ]
    assert sorted(a.subject.id for a in audits) == sorted(s.session_id for s in first.sessions)
    assert {a.action for a in audits} == {CREATE}

    again = api.stub.ImportTimetable(import_request(api, CSV, timezone="Europe/London"))

    assert (again.created, again.updated, again.unchanged) == (0, 0, 2)
    assert [s.session_id for s in again.sessions] == [s.session_id for s in first.sessions]
    assert len(api.rows("SELECT id FROM teaching_sessions")) == 2
    assert len(api.rows("SELECT id FROM outbox")) == 2

    secret_query = "SELECT code_secret FROM teaching_sessions WHERE timetable_uid = 'tt-2'"
    [(secret_before,)] = api.rows(secret_query)
    moved = CSV.replace("2026-10-12T09:00,2026-10-12T09:50", "2026-10-12T11:00,2026-10-12T11:50")
    changed = api.stub.ImportTimetable(import_request(api, moved, timezone="Europe/London"))

    assert (changed.created, changed.updated, changed.unchanged) == (0, 1, 1)
    assert changed.sessions[1].session_id == first.sessions[1].session_id
    assert changed.sessions[1].starts_at.ToDatetime(tzinfo=UTC) == datetime(2026, 10, 12, 10, 0, tzinfo=UTC)
    # Same session, same code secret: presenter links and codes keep working.
    assert api.rows(secret_query) == [(secret_before,)]


def test_icalendar_import_with_a_label_mapping(api: Api) -> None:
    api.identity.allow(STAFF, CREATE, "module_run", MODULE_RUN)

    response = api.stub.ImportTimetable(
        import_request(api, ICS, checkin_pb2.TIMETABLE_FORMAT_ICALENDAR, module_run_by_label={"CS101": MODULE_RUN})
    )

    [session] = response.sessions
    assert (session.module_run_id, session.room, session.timetable_uid) == (
        MODULE_RUN,
        "Room 1.01",
        "ics-1@timetable.example.ac.uk",
    )
    assert session.starts_at.ToDatetime(tzinfo=UTC) == datetime(2026, 10, 6, 13, 0, tzinfo=UTC)
    assert session.checkin_opens_at.ToDatetime(tzinfo=UTC) == datetime(2026, 10, 6, 12, 50, tzinfo=UTC)


def test_a_bad_file_is_rejected_whole_with_line_numbers(api: Api) -> None:
    api.identity.allow(STAFF, CREATE, "module_run", MODULE_RUN)
    bad = CSV + f"tt-3,{MODULE_RUN},,2026-10-19T09:00,2026-10-19T09:50\n"

    with pytest.raises(grpc.RpcError) as raised:
        api.stub.ImportTimetable(import_request(api, bad))

    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "line 4: no room" in raised.value.details()
    assert api.rows("SELECT id FROM teaching_sessions") == []
    assert api.rows("SELECT id FROM outbox") == []


def test_import_needs_the_right_for_every_module_run_in_the_file(api: Api) -> None:
    api.identity.allow(STAFF, CREATE, "module_run", MODULE_RUN)
    mixed = CSV + f"tt-9,{OTHER_RUN},LT2,2026-10-19T09:00,2026-10-19T09:50\n"

    assert status_of(lambda: api.stub.ImportTimetable(import_request(api, mixed))) == grpc.StatusCode.PERMISSION_DENIED
    assert api.rows("SELECT id FROM teaching_sessions") == []
    asked = {(r.action, r.resource.id) for r in api.identity.access_requests}
    assert asked == {(CREATE, MODULE_RUN), (CREATE, OTHER_RUN)}


def test_a_uid_cannot_move_to_another_module_run(api: Api) -> None:
    api.identity.allow(STAFF, CREATE, "module_run", MODULE_RUN)
    api.identity.allow(STAFF, CREATE, "module_run", OTHER_RUN)
    api.stub.ImportTimetable(import_request(api, CSV))

    with pytest.raises(grpc.RpcError) as raised:
        api.stub.ImportTimetable(import_request(api, CSV.replace(MODULE_RUN, OTHER_RUN)))

    assert "line 2: this UID belongs to a session of another module run" in raised.value.details()


# --- corrections ---


def opened_session(api: Api) -> checkin_pb2.TeachingSession:
    api.identity.allow(STAFF, OPEN, "module_run", MODULE_RUN)
    session: checkin_pb2.TeachingSession = api.stub.OpenSession(open_request(api)).session
    api.rows("DELETE FROM outbox RETURNING id")
    return session


def correction_request(
    api: Api, session_id: str, entries: list[tuple[str, bool]], key: str | None = None
) -> checkin_pb2.RecordAttendanceCorrectionsRequest:
    return checkin_pb2.RecordAttendanceCorrectionsRequest(
        actor_assertion=api.assertion(),
        session_id=session_id,
        entries=[checkin_pb2.AttendanceCorrection(student_pseudonym=p, present=present) for p, present in entries],
        reason=checkin_pb2.CORRECTION_REASON_NO_DEVICE,
        idempotency_key=key or str(uuid.uuid4()),
    )


def test_corrections_are_stored_with_their_events_and_audit_records(api: Api) -> None:
    session = opened_session(api)
    api.identity.allow(STAFF, CORRECT, "module_run", MODULE_RUN)
    request = correction_request(api, session.session_id, [("p_one", True), ("p_two", False)])

    response = api.stub.RecordAttendanceCorrections(request)

    assert (response.recorded, response.replayed) == (2, False)
    rows = api.rows("SELECT student_pseudonym, present FROM attendance_corrections ORDER BY student_pseudonym")
    assert rows == [("p_one", True), ("p_two", False)]
    outbox = api.rows("SELECT routing_key, body FROM outbox ORDER BY id")
    by_key: dict[str, list[bytes]] = {}
    for routing_key, body in outbox:
        assert isinstance(body, bytes)
        by_key.setdefault(str(routing_key), []).append(body)
    [recorded] = [checkin_events_pb2.AttendanceRecorded.FromString(b) for b in by_key["checkin.attendance_recorded.v1"]]
    assert (recorded.student_pseudonym, recorded.source) == (
        "p_one",
        checkin_events_pb2.ATTENDANCE_SOURCE_STAFF_CORRECTION,
    )
    [withdrawn] = [
        checkin_events_pb2.AttendanceWithdrawn.FromString(b) for b in by_key["checkin.attendance_withdrawn.v1"]
    ]
    assert (withdrawn.student_pseudonym, withdrawn.session_id) == ("p_two", session.session_id)
    audits = [audit_events_pb2.AuditEvent.FromString(b) for b in by_key["audit.recorded.v1"]]
    assert sorted((a.action, a.subject.kind, a.subject.id) for a in audits) == [
        (CORRECT, "pseudonym", "p_one"),
        (CORRECT, "pseudonym", "p_two"),
    ]
    assert all(a.actor.id == STAFF and "NO_DEVICE" in a.purpose and session.session_id in a.purpose for a in audits)


def test_a_retried_request_is_applied_once(api: Api) -> None:
    session = opened_session(api)
    api.identity.allow(STAFF, CORRECT, "module_run", MODULE_RUN)
    request = correction_request(api, session.session_id, [("p_one", True)])
    api.stub.RecordAttendanceCorrections(request)

    again = api.stub.RecordAttendanceCorrections(request)

    assert (again.recorded, again.replayed) == (1, True)
    assert len(api.rows("SELECT id FROM attendance_corrections")) == 1
    assert len(api.rows("SELECT id FROM outbox")) == 2


def test_bulk_corrections_of_a_whole_class(api: Api) -> None:
    session = opened_session(api)
    api.identity.allow(STAFF, CORRECT, "module_run", MODULE_RUN)
    entries = [(f"p_{n:04d}", n % 3 != 0) for n in range(300)]

    response = api.stub.RecordAttendanceCorrections(correction_request(api, session.session_id, entries))

    assert response.recorded == 300
    assert len(api.rows("SELECT id FROM attendance_corrections")) == 300
    assert len(api.rows("SELECT id FROM outbox")) == 600


def test_corrections_need_identity_to_allow_them(api: Api) -> None:
    session = opened_session(api)  # may open, but not correct

    code = status_of(
        lambda: api.stub.RecordAttendanceCorrections(correction_request(api, session.session_id, [("p", True)]))
    )

    assert code == grpc.StatusCode.PERMISSION_DENIED
    assert api.rows("SELECT id FROM attendance_corrections") == []
    assert api.rows("SELECT id FROM outbox") == []


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"session_id": "nope"}, "session_id must be a UUID"),
        ({"idempotency_key": ""}, "idempotency_key must be a UUID"),
        ({"reason": 0}, "reason is required"),
        ({"entries": []}, "entries is empty"),
        (
            {"entries": [checkin_pb2.AttendanceCorrection(student_pseudonym=" ")]},
            "entries[0]: student_pseudonym is required",
        ),
        (
            {
                "entries": [
                    checkin_pb2.AttendanceCorrection(student_pseudonym="p"),
                    checkin_pb2.AttendanceCorrection(student_pseudonym="p"),
                ]
            },
            "entries[1]: the same student as entries[0]",
        ),
    ],
)
def test_invalid_corrections_are_refused_with_a_clear_message(
    api: Api, change: dict[str, object], message: str
) -> None:
    session = opened_session(api)
    api.identity.allow(STAFF, CORRECT, "module_run", MODULE_RUN)
    request = correction_request(api, session.session_id, [("p_one", True)])
    for name, value in change.items():
        if name == "entries":
            del request.entries[:]
            request.entries.extend(value)  # type: ignore[arg-type]
        else:
            setattr(request, name, value)

    with pytest.raises(grpc.RpcError) as raised:
        api.stub.RecordAttendanceCorrections(request)

    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert message in raised.value.details()
    assert api.rows("SELECT id FROM attendance_corrections") == []


def test_corrections_for_an_unknown_session_are_not_found(api: Api) -> None:
    api.identity.allow(STAFF, CORRECT, "module_run", MODULE_RUN)
    request = correction_request(api, str(uuid.uuid4()), [("p_one", True)])
    assert status_of(lambda: api.stub.RecordAttendanceCorrections(request)) == grpc.StatusCode.NOT_FOUND


def test_list_sessions_for_correction(api: Api) -> None:
    session = opened_session(api)
    assert (
        status_of(
            lambda: api.stub.ListSessions(
                checkin_pb2.ListSessionsRequest(actor_assertion=api.assertion(), module_run_id=MODULE_RUN)
            )
        )
        == grpc.StatusCode.PERMISSION_DENIED
    )
    api.identity.allow(STAFF, CORRECT, "module_run", MODULE_RUN)

    listed = api.stub.ListSessions(
        checkin_pb2.ListSessionsRequest(actor_assertion=api.assertion(), module_run_id=MODULE_RUN)
    )

    assert [s.session_id for s in listed.sessions] == [session.session_id]


def test_a_session_can_be_restricted_to_campus_networks(api: Api) -> None:
    api.identity.allow(STAFF, OPEN, "module_run", MODULE_RUN)

    session = api.stub.OpenSession(open_request(api, allowed_networks=["192.0.2.7/24", "2001:db8::/32"])).session

    assert list(session.allowed_networks) == ["192.0.2.0/24", "2001:db8::/32"]
    with pytest.raises(grpc.RpcError) as raised:
        api.stub.OpenSession(open_request(api, allowed_networks=["campus wifi"]))
    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "allowed_networks: 'campus wifi' is not a network range" in raised.value.details()
