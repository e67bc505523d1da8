"""Indicators' gRPC service for the case, engagement and cohort pages, returning plain records.

Indicators decides nothing about access itself: it asks identity which students the person may see, audits the read
and answers. The portal shows what it returned; failures map to the same ServiceCallError messages as every other
client, never echoing remote details.
"""

from __future__ import annotations

import dataclasses
from datetime import datetime
from typing import Protocol

import grpc
from google.protobuf.timestamp_pb2 import Timestamp
from tend.indicators.v1 import indicators_pb2, indicators_pb2_grpc

from tend_portal.clients import _optional_datetime
from tend_portal.grpc_calls import call, check_health

# What a member of staff may record about a case, in the order the page offers them.
CASE_ACTIONS: tuple[tuple[str, str, str], ...] = (
    ("note", "Add a note", "For example: spoke after the lecture; will come to office hours."),
    ("contacted", "I contacted the student", "In person, by phone or in your own e-mail."),
    ("referred", "I referred the student", "For example to student services or wellbeing."),
    ("close", "Close the case", "Say what the outcome was. Reminders about this case stop."),
)
_ACTION_KINDS = {
    "note": indicators_pb2.CASE_ACTION_KIND_NOTE,
    "contacted": indicators_pb2.CASE_ACTION_KIND_CONTACTED,
    "referred": indicators_pb2.CASE_ACTION_KIND_REFERRED,
    "close": indicators_pb2.CASE_ACTION_KIND_CLOSE,
}
MAX_NOTE_LENGTH = 2000


@dataclasses.dataclass(frozen=True)
class Flag:
    flag_id: str
    rule: str
    module_run_id: str
    standing: bool
    sentence: str
    window_starts_on: str
    window_ends_on: str
    raised_at: datetime | None
    withdrawn_at: datetime | None
    withdrawn_reason: str
    # The module run as the reference data names it; "" when it gave none.
    module_run_label: str = ""


@dataclasses.dataclass(frozen=True)
class CaseEntry:
    at: datetime | None
    text: str
    flag_id: str
    enquiry_request_id: str


@dataclasses.dataclass(frozen=True)
class CaseStaff:
    person_id: str
    relationship: str


@dataclasses.dataclass(frozen=True)
class Case:
    case_id: str
    student_pseudonym: str
    is_open: bool
    staff: tuple[CaseStaff, ...]
    flags: tuple[Flag, ...]
    history: tuple[CaseEntry, ...]
    opened_at: datetime | None
    updated_at: datetime | None

    @property
    def standing_flags(self) -> tuple[Flag, ...]:
        return tuple(flag for flag in self.flags if flag.standing)

    @property
    def withdrawn_flags(self) -> tuple[Flag, ...]:
        return tuple(flag for flag in self.flags if not flag.standing)

    @property
    def enquiry_request_ids(self) -> tuple[str, ...]:
        """The supportive enquiries its history mentions, newest first, each once."""
        ids = [entry.enquiry_request_id for entry in reversed(self.history) if entry.enquiry_request_id]
        return tuple(dict.fromkeys(ids))


@dataclasses.dataclass(frozen=True)
class SourceActivity:
    source: str
    last_activity_at: datetime | None
    records: int


@dataclasses.dataclass(frozen=True)
class WeekActivity:
    week_starts_on: str
    amount: int
    active_days: int
    in_break: bool


@dataclasses.dataclass(frozen=True)
class CohortContext:
    cohort_size: int
    suppressed: bool
    median_weekly_amount: float
    median_attendance_rate: float


@dataclasses.dataclass(frozen=True)
class ModuleRunEngagement:
    module_run_id: str
    sources: tuple[SourceActivity, ...]
    days_since_any_engagement: int
    weeks: tuple[WeekActivity, ...]
    sessions_attended: int
    sessions_expected: int
    attendance_rate: float
    assignments_expected: int
    assignments_submitted: int
    recordings_watched: int
    cohort: CohortContext
    # The module run as the reference data names it; "" when it gave none.
    module_run_label: str = ""


@dataclasses.dataclass(frozen=True)
class EngagementSummary:
    student_pseudonym: str
    as_of: str
    module_runs: tuple[ModuleRunEngagement, ...]
    flags: tuple[Flag, ...]

    @property
    def standing_flags(self) -> tuple[Flag, ...]:
        return tuple(flag for flag in self.flags if flag.standing)

    @property
    def withdrawn_flags(self) -> tuple[Flag, ...]:
        return tuple(flag for flag in self.flags if not flag.standing)


@dataclasses.dataclass(frozen=True)
class CohortWeek:
    week_starts_on: str
    students: int
    active_share: float
    lower_quartile: float
    median: float
    upper_quartile: float
    in_break: bool


@dataclasses.dataclass(frozen=True)
class CohortPatterns:
    module_run_id: str
    cohort_size: int
    minimum_cohort_size: int
    suppressed: bool
    weeks: tuple[CohortWeek, ...]
    median_attendance_rate: float
    submission_rate: float
    flagged_share: float
    # The module run as the reference data names it; "" when it gave none.
    module_run_label: str = ""


class IndicatorsApi(Protocol):
    def list_cases(self, actor_assertion: str, include_closed: bool = False) -> list[Case]: ...
    def get_case(self, actor_assertion: str, case_id: str) -> Case: ...
    def engagement_summary(self, actor_assertion: str, student_pseudonym: str) -> EngagementSummary: ...
    def cohort_patterns(self, actor_assertion: str, module_run_id: str) -> CohortPatterns: ...
    def record_case_action(self, actor_assertion: str, case_id: str, kind: str, note: str, request_id: str) -> Case: ...
    def check_health(self) -> None: ...


def _when(stamp: Timestamp) -> datetime | None:
    return _optional_datetime(stamp)


def _flag(message: indicators_pb2.Flag) -> Flag:
    return Flag(
        flag_id=message.flag_id,
        rule=message.rule,
        module_run_id=message.module_run_id,
        standing=message.status == indicators_pb2.FLAG_STATUS_RAISED,
        sentence=message.sentence,
        window_starts_on=message.window_starts_on,
        window_ends_on=message.window_ends_on,
        raised_at=_when(message.raised_at),
        withdrawn_at=_when(message.withdrawn_at),
        withdrawn_reason=message.withdrawn_reason,
        module_run_label=message.module_run_label,
    )


def case_record(message: indicators_pb2.Case) -> Case:
    return Case(
        case_id=message.case_id,
        student_pseudonym=message.student_pseudonym,
        is_open=message.status == indicators_pb2.CASE_STATUS_OPEN,
        staff=tuple(CaseStaff(s.person_id, s.relationship) for s in message.staff),
        flags=tuple(_flag(f) for f in message.flags),
        history=tuple(CaseEntry(_when(e.at), e.text, e.flag_id, e.enquiry_request_id) for e in message.history),
        opened_at=_when(message.opened_at),
        updated_at=_when(message.updated_at),
    )


def _module_run(message: indicators_pb2.ModuleRunEngagement) -> ModuleRunEngagement:
    cohort = message.cohort
    return ModuleRunEngagement(
        module_run_id=message.module_run_id,
        sources=tuple(SourceActivity(s.source, _when(s.last_activity_at), s.records) for s in message.sources),
        days_since_any_engagement=message.days_since_any_engagement,
        weeks=tuple(WeekActivity(w.week_starts_on, w.amount, w.active_days, w.in_break) for w in message.weeks),
        sessions_attended=message.sessions_attended,
        sessions_expected=message.sessions_expected,
        attendance_rate=message.attendance_rate,
        assignments_expected=message.assignments_expected,
        assignments_submitted=message.assignments_submitted,
        recordings_watched=message.recordings_watched,
        cohort=CohortContext(
            cohort.cohort_size, cohort.suppressed, cohort.median_weekly_amount, cohort.median_attendance_rate
        ),
        module_run_label=message.module_run_label,
    )


class IndicatorsClient:
    """Indicators' gRPC service, over the app's one channel to indicators (see channels.py)."""

    def __init__(self, channel: grpc.Channel, timeout_seconds: float = 5.0) -> None:
        self._channel = channel
        self._stub = indicators_pb2_grpc.IndicatorsServiceStub(self._channel)
        self._timeout = timeout_seconds

    def list_cases(self, actor_assertion: str, include_closed: bool = False) -> list[Case]:
        request = indicators_pb2.ListCasesRequest(actor_assertion=actor_assertion, include_closed=include_closed)
        response = call("ListCases", self._stub.ListCases, request, self._timeout)
        return [case_record(case) for case in response.cases]

    def get_case(self, actor_assertion: str, case_id: str) -> Case:
        """One of the person's cases, open or closed; NotFound when there is none or it is not theirs (indicators
        does not tell the two apart)."""
        request = indicators_pb2.GetCaseRequest(actor_assertion=actor_assertion, case_id=case_id)
        response = call("GetCase", self._stub.GetCase, request, self._timeout)
        return case_record(response.case)

    def engagement_summary(self, actor_assertion: str, student_pseudonym: str) -> EngagementSummary:
        request = indicators_pb2.GetEngagementSummaryRequest(
            actor_assertion=actor_assertion,
            student_pseudonym=student_pseudonym,
            purpose=indicators_pb2.SUMMARY_PURPOSE_ENGAGEMENT_SUPPORT,
        )
        response = call("GetEngagementSummary", self._stub.GetEngagementSummary, request, self._timeout)
        return EngagementSummary(
            student_pseudonym=response.student_pseudonym,
            as_of=response.as_of,
            module_runs=tuple(_module_run(run) for run in response.module_runs),
            flags=tuple(_flag(flag) for flag in response.flags),
        )

    def cohort_patterns(self, actor_assertion: str, module_run_id: str) -> CohortPatterns:
        request = indicators_pb2.GetCohortPatternsRequest(actor_assertion=actor_assertion, module_run_id=module_run_id)
        response = call("GetCohortPatterns", self._stub.GetCohortPatterns, request, self._timeout)
        return CohortPatterns(
            module_run_id=response.module_run_id,
            cohort_size=response.cohort_size,
            minimum_cohort_size=response.minimum_cohort_size,
            suppressed=response.suppressed,
            weeks=tuple(
                CohortWeek(
                    w.week_starts_on,
                    w.students,
                    w.active_share,
                    w.lower_quartile,
                    w.median,
                    w.upper_quartile,
                    w.in_break,
                )
                for w in response.weeks
            ),
            median_attendance_rate=response.median_attendance_rate,
            submission_rate=response.submission_rate,
            flagged_share=response.flagged_share,
            module_run_label=response.module_run_label,
        )

    def record_case_action(self, actor_assertion: str, case_id: str, kind: str, note: str, request_id: str) -> Case:
        """Records what the person did; `request_id` makes a repeated submission record once."""
        request = indicators_pb2.RecordCaseActionRequest(
            actor_assertion=actor_assertion, case_id=case_id, kind=_ACTION_KINDS[kind], note=note, request_id=request_id
        )
        response = call("RecordCaseAction", self._stub.RecordCaseAction, request, self._timeout)
        return case_record(response.case)

    def check_health(self) -> None:
        check_health(self._channel, self._timeout)
