"""The gRPC calls behind the attendance correction pages: identity shows staff the students they may correct and maps
student numbers to pseudonyms; checkin lists a module run's sessions and records corrections by pseudonym only.

Kept apart from clients.py so these pages add files rather than change shared ones; failures map to the same
ServiceCallError messages, never echoing remote details.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Protocol

import grpc
from tend.checkin.v1 import checkin_pb2, checkin_pb2_grpc
from tend.identity.v1 import identity_pb2, identity_pb2_grpc

from tend_portal.grpc_calls import call

# The reasons staff choose from, in the order the page offers them (CorrectionReason in checkin.proto).
REASONS: tuple[tuple[str, str], ...] = (
    ("NO_DEVICE", "Attended, but had no working phone or could not connect"),
    ("TECHNICAL_PROBLEM", "Attended, but check-in failed for a technical reason"),
    ("REGISTER_TAKEN_OTHERWISE", "The register was taken another way (on paper or by name)"),
    ("ARRIVED_LATE", "Arrived after check-in closed"),
    ("AUTHORISED_ELSEWHERE", "Attendance authorised elsewhere (placement, field trip)"),
    ("RECORDED_IN_ERROR", "A recorded check-in was wrong: the student was not there"),
)


@dataclasses.dataclass(frozen=True)
class ClassMember:
    pseudonym: str
    display_name: str
    student_number: str


@dataclasses.dataclass(frozen=True)
class SessionSummary:
    session_id: str
    module_run_id: str
    room: str
    starts_at: datetime
    ends_at: datetime


class CorrectionsApi(Protocol):
    def class_list(self, actor_assertion: str, module_run_id: str) -> list[ClassMember] | None: ...
    def sessions(self, actor_assertion: str, module_run_id: str) -> list[SessionSummary]: ...
    def record(
        self, actor_assertion: str, session_id: str, entries: Sequence[tuple[str, bool]], reason: str, key: str
    ) -> int: ...


class CorrectionsClient:
    """Identity and checkin over the app's channels to them (see channels.py). Student numbers are mapped to
    pseudonyms by IdentityAdminClient.pseudonyms_of_student_numbers."""

    def __init__(self, identity_channel: grpc.Channel, checkin_channel: grpc.Channel, timeout_seconds: float) -> None:
        self._identity = identity_pb2_grpc.IdentityServiceStub(identity_channel)
        self._checkin = checkin_pb2_grpc.CheckinServiceStub(checkin_channel)
        self._timeout = timeout_seconds

    def class_list(self, actor_assertion: str, module_run_id: str) -> list[ClassMember] | None:
        """The students the person may correct attendance for on the module run; None when identity gives no
        individual detail for that purpose."""
        request = identity_pb2.ListVisibleStudentsRequest(
            actor_assertion=actor_assertion,
            purpose=identity_pb2.PURPOSE_ATTENDANCE_CORRECTION,
            module_run_id=module_run_id,
        )
        response = call("ListVisibleStudents", self._identity.ListVisibleStudents, request, self._timeout)
        if response.detail != identity_pb2.DETAIL_LEVEL_INDIVIDUAL:
            return None
        members = [ClassMember(s.pseudonym, s.display_name, s.student_number) for s in response.students]
        return sorted(members, key=lambda member: (member.display_name.casefold(), member.student_number))

    def sessions(self, actor_assertion: str, module_run_id: str) -> list[SessionSummary]:
        request = checkin_pb2.ListSessionsRequest(actor_assertion=actor_assertion, module_run_id=module_run_id)
        response = call("ListSessions", self._checkin.ListSessions, request, self._timeout)
        return [
            SessionSummary(
                session_id=s.session_id,
                module_run_id=s.module_run_id,
                room=s.room,
                starts_at=s.starts_at.ToDatetime(tzinfo=UTC),
                ends_at=s.ends_at.ToDatetime(tzinfo=UTC),
            )
            for s in response.sessions
        ]

    def record(
        self, actor_assertion: str, session_id: str, entries: Sequence[tuple[str, bool]], reason: str, key: str
    ) -> int:
        """Records the corrections (pseudonym, present); returns how many. `key` makes a retry count once."""
        request = checkin_pb2.RecordAttendanceCorrectionsRequest(
            actor_assertion=actor_assertion,
            session_id=session_id,
            entries=[checkin_pb2.AttendanceCorrection(student_pseudonym=p, present=present) for p, present in entries],
            reason=checkin_pb2.CorrectionReason.Value(f"CORRECTION_REASON_{reason}"),
            idempotency_key=key,
        )
        response = call(
            "RecordAttendanceCorrections", self._checkin.RecordAttendanceCorrections, request, self._timeout
        )
        return int(response.recorded)
