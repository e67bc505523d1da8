"""The gRPC calls behind the attendance correction pages: identity shows staff the students they may correct and maps
student numbers to pseudonyms; checkin lists a module run's sessions and records corrections by pseudonym only.

Kept apart from clients.py so these pages add files rather than change shared ones; failures map to the same
ServiceCallError messages, never echoing remote details.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from datetime import UTC, datetime

import grpc
from tend.checkin.v1 import checkin_pb2, checkin_pb2_grpc
from tend.identity.v1 import identity_pb2, identity_pb2_grpc

from tend_common.service_auth import channel_to
from tend_portal.clients import _translate

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


class CorrectionsClient:
    """One channel to identity and one to checkin, opened lazily by gRPC and kept for the process."""

    def __init__(
        self, identity_target: str, checkin_target: str, timeout_seconds: float, service_key: str = ""
    ) -> None:
        self._identity = identity_pb2_grpc.IdentityServiceStub(
            channel_to(identity_target, "identity", "portal", service_key)
        )
        self._checkin = checkin_pb2_grpc.CheckinServiceStub(
            channel_to(checkin_target, "checkin", "portal", service_key)
        )
        self._timeout = timeout_seconds

    def class_list(self, actor_assertion: str, module_run_id: str) -> list[ClassMember] | None:
        """The students the person may correct attendance for on the module run; None when identity gives no
        individual detail for that purpose."""
        request = identity_pb2.ListVisibleStudentsRequest(
            actor_assertion=actor_assertion,
            purpose=identity_pb2.PURPOSE_ATTENDANCE_CORRECTION,
            module_run_id=module_run_id,
        )
        try:
            response = self._identity.ListVisibleStudents(request, timeout=self._timeout)
        except grpc.RpcError as exc:
            raise _translate("ListVisibleStudents", exc) from None
        if response.detail != identity_pb2.DETAIL_LEVEL_INDIVIDUAL:
            return None
        members = [ClassMember(s.pseudonym, s.display_name, s.student_number) for s in response.students]
        return sorted(members, key=lambda member: (member.display_name.casefold(), member.student_number))

    def pseudonyms_of_student_numbers(self, student_numbers: Sequence[str]) -> dict[str, str]:
        """Student number to pseudonym, for the numbers identity knows; unknown numbers are absent."""
        request = identity_pb2.MapToPseudonymsRequest(
            kind=identity_pb2.IDENTIFIER_KIND_STUDENT_NUMBER, identifiers=list(student_numbers)
        )
        try:
            response = self._identity.MapToPseudonyms(request, timeout=self._timeout)
        except grpc.RpcError as exc:
            raise _translate("MapToPseudonyms", exc) from None
        return dict(response.pseudonyms)

    def sessions(self, actor_assertion: str, module_run_id: str) -> list[SessionSummary]:
        request = checkin_pb2.ListSessionsRequest(actor_assertion=actor_assertion, module_run_id=module_run_id)
        try:
            response = self._checkin.ListSessions(request, timeout=self._timeout)
        except grpc.RpcError as exc:
            raise _translate("ListSessions", exc) from None
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
        try:
            response = self._checkin.RecordAttendanceCorrections(request, timeout=self._timeout)
        except grpc.RpcError as exc:
            raise _translate("RecordAttendanceCorrections", exc) from None
        return int(response.recorded)
