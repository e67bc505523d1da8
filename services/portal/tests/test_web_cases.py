"""Case, engagement, cohort and supportive e-mail pages. Indicators, notify and identity are fakes over real gRPC; they
decide, and the portal shows what they return: names only as identity resolved them for the person asking, refusals
as a plain page (never the remote details), one action or e-mail however often a form is submitted."""

from __future__ import annotations

import dataclasses
import re
import threading
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime

import grpc
import pytest
from flask import Flask
from tend.identity.v1 import identity_pb2, identity_pb2_grpc
from tend.indicators.v1 import indicators_pb2, indicators_pb2_grpc
from tend.notify.v1 import notify_pb2, notify_pb2_grpc

from services.portal.tests.conftest import (
    IDENTITY_SERVICE,
    STAFF,
    STAFF_NAME,
    STUDENT,
    STUDENT_NAME,
    FakeIdentity,
    PortalBrowser,
    _timestamp,
    abort,
    assertion_for,
    csrf_from,
    serving,
)
from tend_common.grpc_server import GrpcServer
from tend_portal.settings import Settings
from tend_portal.web import create_app

TUTEE = "p_tutee1aa"  # the student of the staff member's case
TUTEE_NAME = "Tess Canary-5e7"
OWN = "p_student1"  # the signed-in student's own pseudonym
CASE_ID = str(uuid.uuid4())
CLOSED_CASE_ID = str(uuid.uuid4())
# Routed to the staff member, but identity stopped letting them see the student between GetCase and the summary.
HIDDEN_CASE_ID = str(uuid.uuid4())
HIDDEN = "p_hidden22"
SENTENCE = "No engagement recorded from any source for 15 consecutive term days since 1 Oct, against a threshold of 14."
WITHDRAWN = "Missed the assignment Essay 1, due 3 Oct."
UNCERTAIN_ID = str(uuid.uuid4())
SENT_ID = str(uuid.uuid4())
WHEN = datetime(2026, 10, 16, 9, 0, tzinfo=UTC)
REFUSAL_DETAIL = f"refused: {TUTEE_NAME} is not yours"


def _flag(flag_id: str, sentence: str, raised: bool) -> indicators_pb2.Flag:
    flag = indicators_pb2.Flag(
        flag_id=flag_id,
        rule="no_engagement" if raised else "missed_assignment",
        status=indicators_pb2.FLAG_STATUS_RAISED if raised else indicators_pb2.FLAG_STATUS_WITHDRAWN,
        sentence=sentence,
        window_starts_on="2026-10-01",
        window_ends_on="2026-10-15",
        raised_at=_timestamp(WHEN),
    )
    if not raised:
        flag.withdrawn_at.CopyFrom(_timestamp(WHEN))
        flag.withdrawn_reason = "The submission arrived late from the VLE."
    return flag


class CaseIndicators(indicators_pb2_grpc.IndicatorsServiceServicer):
    """Indicators as the portal uses it: STAFF has one open and one closed case; the student sees only themself."""

    def __init__(self) -> None:
        self.actions: list[indicators_pb2.RecordCaseActionRequest] = []
        self.recorded: dict[str, indicators_pb2.CaseEntry] = {}
        self.list_requests: list[indicators_pb2.ListCasesRequest] = []
        self.get_requests: list[indicators_pb2.GetCaseRequest] = []
        self.summary_requests: list[indicators_pb2.GetEngagementSummaryRequest] = []
        # Module runs a test adds to every summary, after the usual one.
        self.more_runs: list[indicators_pb2.ModuleRunEngagement] = []
        self._lock = threading.Lock()

    def _case(self, case_id: str, pseudonym: str, status: indicators_pb2.CaseStatus.ValueType) -> indicators_pb2.Case:
        history = [
            indicators_pb2.CaseEntry(at=_timestamp(WHEN), text="Flag raised: " + SENTENCE, flag_id="f1"),
            indicators_pb2.CaseEntry(
                at=_timestamp(WHEN), text="Supportive enquiry delivery uncertain.", enquiry_request_id=UNCERTAIN_ID
            ),
            indicators_pb2.CaseEntry(at=_timestamp(WHEN), text="Supportive enquiry sent.", enquiry_request_id=SENT_ID),
        ]
        if case_id == CASE_ID:
            with self._lock:
                history.extend(self.recorded.values())
        return indicators_pb2.Case(
            case_id=case_id,
            student_pseudonym=pseudonym,
            status=status,
            staff=[indicators_pb2.CaseStaff(person_id=STAFF.person_id, relationship="personal_tutor")],
            flags=[_flag("f1", SENTENCE, True), _flag("f2", WITHDRAWN, False)],
            history=history,
            opened_at=_timestamp(datetime(2026, 10, 15, 6, 0, tzinfo=UTC)),
            updated_at=_timestamp(WHEN),
        )

    def ListCases(
        self, request: indicators_pb2.ListCasesRequest, context: grpc.ServicerContext
    ) -> indicators_pb2.ListCasesResponse:
        self.list_requests.append(request)
        if request.actor_assertion != assertion_for(STAFF, "indicators"):
            return indicators_pb2.ListCasesResponse()
        cases = [
            self._case(CASE_ID, TUTEE, indicators_pb2.CASE_STATUS_OPEN),
            self._case(HIDDEN_CASE_ID, HIDDEN, indicators_pb2.CASE_STATUS_OPEN),
        ]
        if request.include_closed:
            cases.append(self._case(CLOSED_CASE_ID, TUTEE, indicators_pb2.CASE_STATUS_CLOSED))
        return indicators_pb2.ListCasesResponse(cases=cases)

    def GetCase(
        self, request: indicators_pb2.GetCaseRequest, context: grpc.ServicerContext
    ) -> indicators_pb2.GetCaseResponse:
        self.get_requests.append(request)
        cases = {
            CASE_ID: (TUTEE, indicators_pb2.CASE_STATUS_OPEN),
            HIDDEN_CASE_ID: (HIDDEN, indicators_pb2.CASE_STATUS_OPEN),
            CLOSED_CASE_ID: (TUTEE, indicators_pb2.CASE_STATUS_CLOSED),
        }
        if request.actor_assertion != assertion_for(STAFF, "indicators") or request.case_id not in cases:
            # As indicators answers: one NOT_FOUND for "no such case" and "not yours".
            abort(context, grpc.StatusCode.NOT_FOUND, REFUSAL_DETAIL)
        pseudonym, status = cases[request.case_id]
        return indicators_pb2.GetCaseResponse(case=self._case(request.case_id, pseudonym, status))

    def GetEngagementSummary(
        self, request: indicators_pb2.GetEngagementSummaryRequest, context: grpc.ServicerContext
    ) -> indicators_pb2.GetEngagementSummaryResponse:
        self.summary_requests.append(request)
        allowed = (request.actor_assertion, request.student_pseudonym) in {
            (assertion_for(STAFF, "indicators"), TUTEE),
            (assertion_for(STUDENT, "indicators"), OWN),
        }
        if not allowed or request.purpose != indicators_pb2.SUMMARY_PURPOSE_ENGAGEMENT_SUPPORT:
            abort(context, grpc.StatusCode.PERMISSION_DENIED, REFUSAL_DETAIL)
        run = indicators_pb2.ModuleRunEngagement(
            module_run_id="run-cs101",
            sources=[indicators_pb2.SourceActivity(source="vle", last_activity_at=_timestamp(WHEN), records=12)],
            days_since_any_engagement=15,
            weeks=[
                indicators_pb2.WeekActivity(week_starts_on="2026-09-28", amount=31, active_days=4),
                indicators_pb2.WeekActivity(week_starts_on="2026-10-05", amount=0, active_days=0, in_break=True),
            ],
            sessions_attended=3,
            sessions_expected=8,
            attendance_rate=0.375,
            assignments_expected=2,
            assignments_submitted=1,
            recordings_watched=4,
            cohort=indicators_pb2.CohortContext(cohort_size=6, suppressed=True),
        )
        return indicators_pb2.GetEngagementSummaryResponse(
            student_pseudonym=request.student_pseudonym,
            as_of="2026-10-16",
            module_runs=[run, *self.more_runs],
            flags=[_flag("f1", SENTENCE, True), _flag("f2", WITHDRAWN, False)],
        )

    def GetCohortPatterns(
        self, request: indicators_pb2.GetCohortPatternsRequest, context: grpc.ServicerContext
    ) -> indicators_pb2.GetCohortPatternsResponse:
        if request.actor_assertion != assertion_for(STAFF, "indicators") or request.module_run_id not in {
            "run-cs101",
            "run-cs102",
        }:
            abort(context, grpc.StatusCode.PERMISSION_DENIED, REFUSAL_DETAIL)
        if request.module_run_id == "run-cs102":
            return indicators_pb2.GetCohortPatternsResponse(
                module_run_id="run-cs102", minimum_cohort_size=10, suppressed=True
            )
        return indicators_pb2.GetCohortPatternsResponse(
            module_run_id="run-cs101",
            cohort_size=87,
            minimum_cohort_size=10,
            weeks=[
                indicators_pb2.CohortWeek(
                    week_starts_on="2026-09-28",
                    students=87,
                    active_share=0.91,
                    lower_quartile=12,
                    median=25.5,
                    upper_quartile=40,
                )
            ],
            median_attendance_rate=0.78,
            submission_rate=0.93,
            flagged_share=0.06,
            module_run_label="CS101 Programming Fundamentals, 2026/27",
        )

    def RecordCaseAction(
        self, request: indicators_pb2.RecordCaseActionRequest, context: grpc.ServicerContext
    ) -> indicators_pb2.RecordCaseActionResponse:
        with self._lock:
            self.actions.append(request)
        if request.actor_assertion != assertion_for(STAFF, "indicators") or request.case_id != CASE_ID:
            abort(context, grpc.StatusCode.PERMISSION_DENIED, REFUSAL_DETAIL)
        with self._lock:
            # Idempotent on request_id, as indicators is.
            self.recorded.setdefault(
                request.request_id, indicators_pb2.CaseEntry(at=_timestamp(WHEN), text=f"Note: {request.note}")
            )
        return indicators_pb2.RecordCaseActionResponse(case=self._case(CASE_ID, TUTEE, indicators_pb2.CASE_STATUS_OPEN))


TEMPLATE_SUBJECT = "How are things going?"
TEMPLATE_BODY = "Dear {student_name},\n\nI wanted to check in. Come and see me.\n\n{sender_name}\n{support_url}"


class CaseNotify(notify_pb2_grpc.NotifyServiceServicer):
    """Notify as the portal uses it: STAFF may write to TUTEE; one e-mail per request id."""

    def __init__(self) -> None:
        self.requests: list[notify_pb2.RequestEnquiryRequest] = []
        self.accepted: dict[str, notify_pb2.RequestEnquiryRequest] = {}
        self.decisions: list[notify_pb2.ResolveUncertainDeliveryRequest] = []
        self.answered: list[str] = []

    def _allowed(self, assertion: str, pseudonym: str) -> bool:
        return assertion == assertion_for(STAFF, "notify") and pseudonym == TUTEE

    def _check(self, subject: str, body: str, context: grpc.ServicerContext) -> None:
        for line, text in enumerate(body.split("\n"), start=1):
            if "flag" in text.lower():
                abort(
                    context,
                    grpc.StatusCode.INVALID_ARGUMENT,
                    "the enquiry cannot be sent as written: body: an enquiry never says a student was flagged;"
                    f' remove "flagged" (line {line})',
                )
        if "canary-detail" in subject:
            abort(context, grpc.StatusCode.INVALID_ARGUMENT, f"something about {TUTEE_NAME}")

    def PreviewEnquiry(
        self, request: notify_pb2.PreviewEnquiryRequest, context: grpc.ServicerContext
    ) -> notify_pb2.PreviewEnquiryResponse:
        if not self._allowed(request.actor_assertion, request.student_pseudonym):
            abort(context, grpc.StatusCode.PERMISSION_DENIED, REFUSAL_DETAIL)
        subject, body = request.subject or TEMPLATE_SUBJECT, request.body or TEMPLATE_BODY
        self._check(subject, body, context)
        text = body.replace("{student_name}", "Tess").replace("{sender_name}", STAFF_NAME)
        return notify_pb2.PreviewEnquiryResponse(
            subject=subject,
            body=body,
            placeholders=["student_name", "sender_name", "support_url"],
            rendered=notify_pb2.RenderedMessage(subject=subject, text_body=text, html_body=f"<p>{text}</p>"),
        )

    def RequestEnquiry(
        self, request: notify_pb2.RequestEnquiryRequest, context: grpc.ServicerContext
    ) -> notify_pb2.RequestEnquiryResponse:
        self.requests.append(request)
        if not self._allowed(request.actor_assertion, request.student_pseudonym):
            abort(context, grpc.StatusCode.PERMISSION_DENIED, REFUSAL_DETAIL)
        self._check(request.subject, request.body, context)
        self.accepted.setdefault(request.request_id, request)
        return notify_pb2.RequestEnquiryResponse(
            request_id=request.request_id, status=notify_pb2.DELIVERY_STATUS_QUEUED
        )

    def GetEnquiryStatus(
        self, request: notify_pb2.GetEnquiryStatusRequest, context: grpc.ServicerContext
    ) -> notify_pb2.GetEnquiryStatusResponse:
        if request.actor_assertion != assertion_for(STAFF, "notify"):
            abort(context, grpc.StatusCode.PERMISSION_DENIED, REFUSAL_DETAIL)
        if request.request_id == UNCERTAIN_ID:
            status = notify_pb2.DELIVERY_STATUS_DELIVERY_UNCERTAIN
        elif request.request_id == SENT_ID:
            status = notify_pb2.DELIVERY_STATUS_SENT
        elif request.request_id in self.accepted:
            status = notify_pb2.DELIVERY_STATUS_QUEUED
        else:
            abort(context, grpc.StatusCode.NOT_FOUND, "no enquiry with this request_id")
        follow_up = "reminders stopped: the student engaged again" if status == notify_pb2.DELIVERY_STATUS_SENT else ""
        return notify_pb2.GetEnquiryStatusResponse(
            request_id=request.request_id, status=status, attempts=1, updated_at=_timestamp(WHEN), follow_up=follow_up
        )

    def ResolveUncertainDelivery(
        self, request: notify_pb2.ResolveUncertainDeliveryRequest, context: grpc.ServicerContext
    ) -> notify_pb2.ResolveUncertainDeliveryResponse:
        self.decisions.append(request)
        return notify_pb2.ResolveUncertainDeliveryResponse(status=notify_pb2.DELIVERY_STATUS_SENT)

    def RecordEnquiryAnswered(
        self, request: notify_pb2.RecordEnquiryAnsweredRequest, context: grpc.ServicerContext
    ) -> notify_pb2.RecordEnquiryAnsweredResponse:
        self.answered.append(request.request_id)
        return notify_pb2.RecordEnquiryAnsweredResponse()


class DirectoryIdentity(FakeIdentity):
    """Identity resolving pseudonyms for the person asking, and showing a student themself."""

    def __init__(self) -> None:
        super().__init__()
        self.resolved: list[identity_pb2.ResolvePseudonymsRequest] = []

    def ResolvePseudonyms(
        self, request: identity_pb2.ResolvePseudonymsRequest, context: grpc.ServicerContext
    ) -> identity_pb2.ResolvePseudonymsResponse:
        self.resolved.append(request)
        if not request.actor_assertion.endswith(STAFF.person_id):
            return identity_pb2.ResolvePseudonymsResponse()
        known = {TUTEE: TUTEE_NAME}  # HIDDEN is not visible to the staff member any more
        return identity_pb2.ResolvePseudonymsResponse(
            students=[
                identity_pb2.VisibleStudent(pseudonym=p, display_name=known[p], student_number="CN5E7")
                for p in request.pseudonyms
                if p in known
            ]
        )

    def ListVisibleStudents(
        self, request: identity_pb2.ListVisibleStudentsRequest, context: grpc.ServicerContext
    ) -> identity_pb2.ListVisibleStudentsResponse:
        if request.actor_assertion.endswith(STUDENT.person_id):
            return identity_pb2.ListVisibleStudentsResponse(
                detail=identity_pb2.DETAIL_LEVEL_INDIVIDUAL,
                students=[identity_pb2.VisibleStudent(pseudonym=OWN, display_name=STUDENT_NAME)],
            )
        return identity_pb2.ListVisibleStudentsResponse(detail=identity_pb2.DETAIL_LEVEL_NONE)


INDICATORS_SERVICE = indicators_pb2.DESCRIPTOR.services_by_name["IndicatorsService"]
NOTIFY_SERVICE = notify_pb2.DESCRIPTOR.services_by_name["NotifyService"]


@pytest.fixture
def fake_identity() -> Iterator[tuple[FakeIdentity, GrpcServer]]:
    yield from serving(DirectoryIdentity(), identity_pb2_grpc.add_IdentityServiceServicer_to_server, IDENTITY_SERVICE)


@pytest.fixture
def fake_indicators() -> Iterator[tuple[CaseIndicators, GrpcServer]]:
    yield from serving(
        CaseIndicators(), indicators_pb2_grpc.add_IndicatorsServiceServicer_to_server, INDICATORS_SERVICE
    )


@pytest.fixture
def fake_notify() -> Iterator[tuple[CaseNotify, GrpcServer]]:
    yield from serving(CaseNotify(), notify_pb2_grpc.add_NotifyServiceServicer_to_server, NOTIFY_SERVICE)


@pytest.fixture
def app(
    settings: Settings,
    fake_indicators: tuple[CaseIndicators, GrpcServer],
    fake_notify: tuple[CaseNotify, GrpcServer],
) -> Flask:
    return create_app(
        dataclasses.replace(
            settings,
            indicators_target=f"127.0.0.1:{fake_indicators[1].port}",
            notify_target=f"127.0.0.1:{fake_notify[1].port}",
        )
    )


@pytest.fixture
def indicators(fake_indicators: tuple[CaseIndicators, GrpcServer]) -> CaseIndicators:
    return fake_indicators[0]


@pytest.fixture
def notify(fake_notify: tuple[CaseNotify, GrpcServer]) -> CaseNotify:
    return fake_notify[0]


CASE_PATH = f"/cases/{CASE_ID}"


def _text(response: object) -> str:
    return response.get_data(as_text=True)  # type: ignore[attr-defined, no-any-return]


def _hidden(page: str, name: str) -> str:
    found = re.search(rf'name="{name}" value="([^"]+)"', page)
    assert found is not None, f"no hidden field {name}"
    return found.group(1)


# My cases.


def test_my_cases_lists_open_cases_with_names_resolved_for_me_and_their_sentences(
    signed_in_staff: PortalBrowser, identity: FakeIdentity, indicators: CaseIndicators
) -> None:
    page = _text(signed_in_staff.get("/cases"))
    assert TUTEE_NAME in page
    assert SENTENCE in page
    assert WITHDRAWN not in page  # only standing flags are listed
    assert f'href="/cases/{CASE_ID}"' in page
    assert f"/cases/{CLOSED_CASE_ID}" not in page
    assert "15 Oct 2026" in page
    assert "16 Oct 2026" in page
    # A student identity does not resolve for this person is listed without a name, never by pseudonym.
    assert "Name not available to you" in page
    assert HIDDEN not in page
    assert TUTEE not in page
    assert isinstance(identity, DirectoryIdentity)
    [resolved] = identity.resolved
    assert resolved.actor_assertion == assertion_for(STAFF, "identity")  # identity resolves: its own audience
    assert resolved.purpose == identity_pb2.PURPOSE_ENGAGEMENT_SUPPORT
    assert [r.include_closed for r in indicators.list_requests] == [False]


def test_closed_cases_on_request(signed_in_staff: PortalBrowser, indicators: CaseIndicators) -> None:
    page = _text(signed_in_staff.get("/cases?closed=1"))
    assert f"/cases/{CLOSED_CASE_ID}" in page
    assert "Closed" in page
    assert indicators.list_requests[-1].include_closed


def test_cases_are_for_staff_only(signed_in_student: PortalBrowser, indicators: CaseIndicators) -> None:
    assert signed_in_student.get("/cases").status_code == 403
    assert signed_in_student.get(CASE_PATH).status_code == 403
    assert indicators.list_requests == []


def test_the_menu_offers_each_person_their_own_page(
    signed_in_staff: PortalBrowser, browser: PortalBrowser, student: object
) -> None:
    staff_home = _text(signed_in_staff.get("/"))
    assert 'href="/cases"' in staff_home
    assert 'href="/my-engagement"' not in staff_home


def test_a_student_sees_my_engagement_in_the_menu(signed_in_student: PortalBrowser) -> None:
    home = _text(signed_in_student.get("/"))
    assert 'href="/my-engagement"' in home
    assert 'href="/cases"' not in home


# The case page.


def test_the_case_page_shows_summary_flags_evidence_history_and_actions(
    signed_in_staff: PortalBrowser, indicators: CaseIndicators
) -> None:
    response = signed_in_staff.get(CASE_PATH)
    page = _text(response)
    assert response.status_code == 200, page
    assert f"<h1>{TUTEE_NAME}</h1>" in page
    assert SENTENCE in page
    assert "2026-10-01 to 2026-10-15" in page
    assert WITHDRAWN in page
    assert "The submission arrived late from the VLE." in page
    assert "3 of 8 (38%)" in page  # attendance
    assert "1 of 2" in page  # assignments
    assert "Too few students on this module to compare with the group." in page
    assert "Break (not counted)" in page
    assert "Flag raised: " in page  # the history
    assert "Programming" in page  # the module run's name, for a module the person teaches
    assert csrf_from(page)
    uuid.UUID(_hidden(page, "idempotency_key"))
    [summary] = indicators.summary_requests
    assert summary.actor_assertion == assertion_for(STAFF, "indicators")
    assert summary.student_pseudonym == TUTEE
    assert summary.purpose == indicators_pb2.SUMMARY_PURPOSE_ENGAGEMENT_SUPPORT
    # The one case is asked for by id (audited for its student only), never by listing all the person's cases.
    assert [(r.actor_assertion, r.case_id) for r in indicators.get_requests] == [
        (assertion_for(STAFF, "indicators"), CASE_ID)
    ]
    assert indicators.list_requests == []


def test_a_closed_case_is_shown_as_closed(signed_in_staff: PortalBrowser, indicators: CaseIndicators) -> None:
    response = signed_in_staff.get(f"/cases/{CLOSED_CASE_ID}")
    assert response.status_code == 200
    assert "Case closed" in _text(response)
    assert [r.case_id for r in indicators.get_requests] == [CLOSED_CASE_ID]


def test_a_case_not_routed_to_me_is_not_found(signed_in_staff: PortalBrowser, indicators: CaseIndicators) -> None:
    unknown = str(uuid.uuid4())
    response = signed_in_staff.get(f"/cases/{unknown}")
    assert response.status_code == 404
    assert "We could not find that case among the cases routed to you." in _text(response)
    assert REFUSAL_DETAIL not in _text(response)
    assert signed_in_staff.get(f"/cases/{unknown}/enquiry").status_code == 404
    assert [r.case_id for r in indicators.get_requests] == [unknown, unknown]
    assert signed_in_staff.get("/cases/not-a-case").status_code == 404
    assert len(indicators.get_requests) == 2  # a malformed id is not even asked about
    assert indicators.list_requests == []


def test_a_refused_summary_shows_the_no_access_page_and_nothing_about_the_student(
    signed_in_staff: PortalBrowser,
) -> None:
    response = signed_in_staff.get(f"/cases/{HIDDEN_CASE_ID}")
    page = _text(response)
    assert response.status_code == 403
    assert "You don&#39;t have access to this student" in page or "You don't have access to this student" in page
    assert TUTEE_NAME not in page
    assert REFUSAL_DETAIL not in page
    assert SENTENCE not in page


def test_recording_an_action_twice_with_one_form_records_once(
    signed_in_staff: PortalBrowser, indicators: CaseIndicators
) -> None:
    page = _text(signed_in_staff.get(CASE_PATH))
    form = {
        "kind": "contacted",
        "note": "Spoke after the lecture.",
        "idempotency_key": _hidden(page, "idempotency_key"),
    }
    first = signed_in_staff.post(f"{CASE_PATH}/actions", form)
    second = signed_in_staff.post(f"{CASE_PATH}/actions", form)
    assert first.status_code == second.status_code == 303
    assert first.headers["Location"].startswith(CASE_PATH)
    assert [a.kind for a in indicators.actions] == [indicators_pb2.CASE_ACTION_KIND_CONTACTED] * 2
    assert len({a.request_id for a in indicators.actions}) == 1
    after = _text(signed_in_staff.get(first.headers["Location"]))
    assert "Recorded in the case" in after
    assert after.count("Note: Spoke after the lecture.") == 1


def test_closing_a_case_sends_the_outcome(signed_in_staff: PortalBrowser, indicators: CaseIndicators) -> None:
    response = signed_in_staff.post(f"{CASE_PATH}/actions", {"kind": "close", "note": "Back on track."})
    assert response.status_code == 303
    [action] = indicators.actions
    assert action.kind == indicators_pb2.CASE_ACTION_KIND_CLOSE
    assert action.note == "Back on track."
    uuid.UUID(action.request_id)


def test_an_incomplete_action_is_refused_with_reasons_and_nothing_recorded(
    signed_in_staff: PortalBrowser, indicators: CaseIndicators
) -> None:
    response = signed_in_staff.post(f"{CASE_PATH}/actions", {"kind": "", "note": "  "})
    page = _text(response)
    assert response.status_code == 400
    assert "Choose what you did." in page
    assert "Write a few words about it" in page
    too_long = signed_in_staff.post(f"{CASE_PATH}/actions", {"kind": "note", "note": "x" * 2001})
    assert too_long.status_code == 400
    assert "at most 2,000 characters" in _text(too_long)
    assert indicators.actions == []


def test_an_action_without_the_csrf_token_is_refused(
    signed_in_staff: PortalBrowser, indicators: CaseIndicators
) -> None:
    response = signed_in_staff.post(f"{CASE_PATH}/actions", {"kind": "note", "note": "x"}, with_csrf=False)
    assert response.status_code in {400, 403}
    assert indicators.actions == []


# Supportive e-mails.


def test_writing_to_the_student_previews_the_template_for_this_student_and_sender(
    signed_in_staff: PortalBrowser, indicators: CaseIndicators
) -> None:
    response = signed_in_staff.get(f"{CASE_PATH}/enquiry")
    page = _text(response)
    assert response.status_code == 200, page
    assert f'value="{TEMPLATE_SUBJECT}"' in page
    assert "Dear {student_name}," in page  # the editable text keeps its placeholders
    assert "Dear Tess," in page
    assert STAFF_NAME in page
    uuid.UUID(_hidden(page, "request_id"))
    assert [r.case_id for r in indicators.get_requests] == [CASE_ID]
    assert indicators.list_requests == []


def test_an_edited_text_notify_refuses_is_kept_and_the_reason_shown(
    signed_in_staff: PortalBrowser, notify: CaseNotify
) -> None:
    page = _text(signed_in_staff.get(f"{CASE_PATH}/enquiry"))
    form = {
        "request_id": _hidden(page, "request_id"),
        "subject": "Hello",
        "body": "You were flagged by Tend.",
        "action": "send",
    }
    response = signed_in_staff.post(f"{CASE_PATH}/enquiry", form)
    text = _text(response)
    assert response.status_code == 400
    assert "an enquiry never says a student was flagged" in text
    assert "You were flagged by Tend." in text  # the sender's text is kept
    assert notify.accepted == {}


def test_other_refusals_do_not_echo_notify_details(signed_in_staff: PortalBrowser) -> None:
    page = _text(signed_in_staff.get(f"{CASE_PATH}/enquiry"))
    form = {"request_id": _hidden(page, "request_id"), "subject": "canary-detail", "body": "Hi", "action": "preview"}
    response = signed_in_staff.post(f"{CASE_PATH}/enquiry", form)
    assert response.status_code == 400
    assert TUTEE_NAME not in _text(response)


def test_sending_twice_with_one_form_sends_one_email_and_the_case_shows_its_status(
    signed_in_staff: PortalBrowser, notify: CaseNotify
) -> None:
    page = _text(signed_in_staff.get(f"{CASE_PATH}/enquiry"))
    request_id = _hidden(page, "request_id")
    form = {
        "request_id": request_id,
        "subject": "Hello",
        "body": "Dear {student_name},\r\nHow are you?",
        "action": "send",
    }
    first = signed_in_staff.post(f"{CASE_PATH}/enquiry", form)
    second = signed_in_staff.post(f"{CASE_PATH}/enquiry", form)
    assert first.status_code == second.status_code == 303
    assert first.headers["Location"] == f"{CASE_PATH}?enquiry={request_id}#enquiries"
    assert [r.request_id for r in notify.requests] == [request_id, request_id]
    assert list(notify.accepted) == [request_id]
    [sent] = notify.accepted.values()
    assert sent.actor_assertion == assertion_for(STAFF, "notify")
    assert sent.student_pseudonym == TUTEE
    assert sent.case_id == CASE_ID
    assert sent.body == "Dear {student_name},\nHow are you?"
    case = _text(signed_in_staff.get(first.headers["Location"]))
    assert "Queued: waiting to be sent" in case
    assert "(the e-mail you just sent)" in case


def test_a_preview_of_edits_keeps_the_request_id_and_sends_nothing(
    signed_in_staff: PortalBrowser, notify: CaseNotify
) -> None:
    page = _text(signed_in_staff.get(f"{CASE_PATH}/enquiry"))
    request_id = _hidden(page, "request_id")
    form = {"request_id": request_id, "subject": "Hello", "body": "Dear {student_name}, how are you?", "action": ""}
    response = signed_in_staff.post(f"{CASE_PATH}/enquiry", form)
    text = _text(response)
    assert response.status_code == 200
    assert "Dear Tess, how are you?" in text
    assert _hidden(text, "request_id") == request_id
    assert notify.requests == []


def test_an_uncertain_delivery_offers_notifys_choices_and_sends_the_decision(
    signed_in_staff: PortalBrowser, notify: CaseNotify
) -> None:
    page = _text(signed_in_staff.get(CASE_PATH))
    assert "Delivery uncertain" in page
    assert f"/cases/{CASE_ID}/enquiries/{UNCERTAIN_ID}/resolve" in page
    for value in ("confirm_sent", "resend", "cancel"):
        assert f'value="{value}"' in page
    refused = signed_in_staff.post(f"{CASE_PATH}/enquiries/{UNCERTAIN_ID}/resolve", {"decision": "guess"})
    assert refused.status_code == 400
    response = signed_in_staff.post(f"{CASE_PATH}/enquiries/{UNCERTAIN_ID}/resolve", {"decision": "confirm_sent"})
    assert response.status_code == 303
    [decision] = notify.decisions
    assert decision.request_id == UNCERTAIN_ID
    assert decision.decision == notify_pb2.UNCERTAIN_DELIVERY_DECISION_CONFIRM_SENT
    assert decision.actor_assertion == assertion_for(STAFF, "notify")


def test_the_case_says_where_a_sent_emails_follow_up_stands(signed_in_staff: PortalBrowser) -> None:
    page = _text(signed_in_staff.get(CASE_PATH))
    assert "Follow-up: reminders stopped: the student engaged again" in page
    assert page.count("Follow-up:") == 1  # only the sent e-mail has one


def test_the_student_replied_stops_the_reminders(signed_in_staff: PortalBrowser, notify: CaseNotify) -> None:
    page = _text(signed_in_staff.get(CASE_PATH))
    assert f"/cases/{CASE_ID}/enquiries/{SENT_ID}/answered" in page
    response = signed_in_staff.post(f"{CASE_PATH}/enquiries/{SENT_ID}/answered", {})
    assert response.status_code == 303
    assert notify.answered == [SENT_ID]


# My engagement.


def test_a_student_sees_their_own_summary_in_plain_language_without_the_word_flag(
    signed_in_student: PortalBrowser, indicators: CaseIndicators
) -> None:
    response = signed_in_student.get("/my-engagement")
    page = _text(response)
    assert response.status_code == 200, page
    assert SENTENCE in page
    assert "3 of 8 (38%)" in page
    assert "can see the same" in page
    assert "flag" not in page.lower()
    [asked] = indicators.summary_requests
    assert (asked.actor_assertion, asked.student_pseudonym) == (assertion_for(STUDENT, "indicators"), OWN)


def test_the_summary_says_no_sessions_were_held_rather_than_a_typical_attendance_of_nothing(
    signed_in_student: PortalBrowser, indicators: CaseIndicators
) -> None:
    cohort = indicators_pb2.CohortContext(cohort_size=40, median_weekly_amount=12.0, median_attendance_rate=0.0)
    indicators.more_runs = [
        indicators_pb2.ModuleRunEngagement(module_run_id="run-ma101", days_since_any_engagement=2, cohort=cohort),
        indicators_pb2.ModuleRunEngagement(
            module_run_id="run-cs102",
            days_since_any_engagement=2,
            sessions_attended=3,
            sessions_expected=4,
            attendance_rate=0.75,
            cohort=indicators_pb2.CohortContext(cohort_size=40, median_weekly_amount=9.0, median_attendance_rate=0.8),
        ),
    ]
    page = _text(signed_in_student.get("/my-engagement"))
    assert "Typical weekly activity in the group of 40: 12.0; no teaching sessions held yet." in page
    assert "Typical weekly activity in the group of 40: 9.0; typical attendance: 80%." in page
    assert "typical attendance: 0%" not in page


_LABELLED_RUN = indicators_pb2.ModuleRunEngagement(
    module_run_id="run-ma101", module_run_label="MA101 Linear Algebra, 2026/27", days_since_any_engagement=2
)


def test_a_student_sees_a_module_runs_label_instead_of_its_reference(
    signed_in_student: PortalBrowser, indicators: CaseIndicators
) -> None:
    indicators.more_runs = [_LABELLED_RUN]
    own = _text(signed_in_student.get("/my-engagement"))
    assert ">MA101 Linear Algebra, 2026/27</h3>" in own
    assert "reference run-ma10" not in own
    assert "Module (reference run-cs10)" in own  # no label from the source: shown as before


def test_a_case_shows_the_label_of_a_module_the_staff_member_does_not_teach(
    signed_in_staff: PortalBrowser, indicators: CaseIndicators
) -> None:
    indicators.more_runs = [_LABELLED_RUN]  # identity names only CS101 and CS102 as taught by STAFF
    case = _text(signed_in_staff.get(CASE_PATH))
    assert ">MA101 Linear Algebra, 2026/27</h3>" in case
    assert "reference" not in case


def test_my_engagement_is_for_students(signed_in_staff: PortalBrowser, indicators: CaseIndicators) -> None:
    assert signed_in_staff.get("/my-engagement").status_code == 403
    assert indicators.summary_requests == []


# Cohort patterns.


def test_cohort_patterns_show_aggregates_for_a_module_i_teach(signed_in_staff: PortalBrowser) -> None:
    choose = _text(signed_in_staff.get("/cohorts"))
    assert 'href="/cohorts/run-cs101"' in choose
    page = _text(signed_in_staff.get("/cohorts/run-cs101"))
    assert "<h1>Cohort patterns: CS101 Programming Fundamentals, 2026/27</h1>" in page  # the label indicators gave
    assert "87 students" in page
    assert "78%" in page
    assert "25.5" in page


def test_a_small_cohort_shows_too_few_students_and_no_numbers(signed_in_staff: PortalBrowser) -> None:
    response = signed_in_staff.get("/cohorts/run-cs102")
    page = _text(response)
    assert response.status_code == 200
    assert "Too few students to show" in page
    assert "<table" not in page
    assert "%" not in page.split("<main", 1)[1]


def test_a_refused_cohort_shows_the_no_access_page(signed_in_staff: PortalBrowser) -> None:
    response = signed_in_staff.get("/cohorts/run-other")
    assert response.status_code == 403
    assert REFUSAL_DETAIL not in _text(response)
    assert signed_in_staff.get("/cohorts/bad%20id").status_code == 404
