"""Audit pages: the data protection officer's searches and downloads, the break-glass review and a person's own
"who has accessed my record". Audit (a fake here, over real gRPC) decides; the portal shows what it returns."""

from __future__ import annotations

import dataclasses
import json
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import grpc
import pytest
from tend.audit.v1 import audit_pb2, audit_pb2_grpc, events_pb2
from tend.identity.v1 import identity_pb2, identity_pb2_grpc

from services.portal.tests.conftest import (
    IDENTITY_SERVICE,
    STUDENT,
    FakeIdentity,
    FakePerson,
    PortalBrowser,
    _timestamp,
    abort,
    assertion_for,
    serving,
)
from tend_common.grpc_server import GrpcServer
from tend_portal.settings import Settings

DPO = FakePerson(
    person_id=str(uuid.uuid4()),
    username="dpo1",
    kind=identity_pb2.PERSON_KIND_STAFF,
    display_name="Dee Canary-d90",
    roles=("data_protection_officer",),
)
LOOKER = str(uuid.uuid4())
WHEN = datetime(2026, 10, 5, 9, 30, tzinfo=UTC)


def _record(seq: int, outcome: events_pb2.Outcome.ValueType, subject: str) -> audit_pb2.AuditRecord:
    return audit_pb2.AuditRecord(
        seq=seq,
        event_id=str(uuid.uuid4()),
        occurred_at=_timestamp(WHEN),
        recorded_at=_timestamp(WHEN),
        actor=events_pb2.Actor(kind=events_pb2.ACTOR_KIND_PERSON, id=LOOKER),
        action="student.view",
        subject=events_pb2.Subject(kind="person", id=subject),
        purpose="engagement_support",
        outcome=outcome,
        origin_service="identity",
    )


class FakeAudit(audit_pb2_grpc.AuditServiceServicer):
    """Audit as the portal uses it: the officer may ask anything, anyone may ask about themself."""

    def __init__(self) -> None:
        self.queries: list[audit_pb2.QueryRecordsRequest] = []
        self.exports: list[audit_pb2.ExportRecordsRequest] = []

    def _allowed(self, assertion: str, query: audit_pb2.Query) -> bool:
        if assertion == assertion_for(DPO, "audit"):
            return True
        own = query.kind == audit_pb2.QUERY_KIND_ACCESSES_TO_PERSON
        return own and assertion == assertion_for(STUDENT, "audit") and query.person_id == STUDENT.person_id

    def _not_used_by_the_portal(self, request: Any, context: grpc.ServicerContext) -> Any:
        abort(context, grpc.StatusCode.UNIMPLEMENTED, "not used by the portal")

    GetSignedTreeHead = GetPublicKeys = GetInclusionProof = GetConsistencyProof = _not_used_by_the_portal

    def QueryRecords(
        self, request: audit_pb2.QueryRecordsRequest, context: grpc.ServicerContext
    ) -> audit_pb2.QueryRecordsResponse:
        self.queries.append(request)
        if not self._allowed(request.actor_assertion, request.query):
            abort(context, grpc.StatusCode.PERMISSION_DENIED, f"refused {DPO.display_name}")
        subject = request.query.person_id or str(uuid.uuid4())
        if request.page_token == "page-2":
            return audit_pb2.QueryRecordsResponse(records=[_record(1, events_pb2.OUTCOME_ALLOWED, subject)])
        records = [_record(3, events_pb2.OUTCOME_REFUSED, subject), _record(2, events_pb2.OUTCOME_ALLOWED, subject)]
        return audit_pb2.QueryRecordsResponse(records=records, next_page_token="page-2")

    def ExportRecords(
        self, request: audit_pb2.ExportRecordsRequest, context: grpc.ServicerContext
    ) -> Iterator[audit_pb2.ExportChunk]:
        self.exports.append(request)
        if not self._allowed(request.actor_assertion, request.query):
            abort(context, grpc.StatusCode.PERMISSION_DENIED, "refused")
        if request.format == audit_pb2.EXPORT_FORMAT_CSV:
            yield audit_pb2.ExportChunk(data=b"seq,action\n", content_type="text/csv")
            yield audit_pb2.ExportChunk(data=b"3,student.view\n")
            yield audit_pb2.ExportChunk(data=b"2,student.view\n")
        else:
            yield audit_pb2.ExportChunk(data=b'{"records": [', content_type="application/json")
            yield audit_pb2.ExportChunk(data=b'{"seq": 3}]}')


GRANT = identity_pb2.BreakGlassGrant(
    grant_id=str(uuid.uuid4()),
    staff_person_id=LOOKER,
    student_person_id=STUDENT.person_id,
    reason="Welfare concern reported out of hours by security",
    granted_at=_timestamp(WHEN),
    expires_at=_timestamp(WHEN + timedelta(hours=1)),
)


STUDENT_NUMBER = "S7000123"


class ReviewingIdentity(FakeIdentity):
    def __init__(self) -> None:
        super().__init__()
        self.people[DPO.username] = DPO
        self.since: list[datetime | None] = []
        self.look_ups: list[identity_pb2.FindPersonRequest] = []

    def FindPerson(
        self, request: identity_pb2.FindPersonRequest, context: grpc.ServicerContext
    ) -> identity_pb2.FindPersonResponse:
        """Tells only the officer, and the same refusal to anyone else whether the number exists or not."""
        self.look_ups.append(request)
        if request.actor_assertion != assertion_for(DPO, "identity"):
            abort(context, grpc.StatusCode.PERMISSION_DENIED, f"refused {STUDENT.display_name}")
        if request.identifier != STUDENT_NUMBER:
            abort(context, grpc.StatusCode.NOT_FOUND, "nobody")
        return identity_pb2.FindPersonResponse(person_id=STUDENT.person_id, display_name=STUDENT.display_name)

    def ListBreakGlassGrants(
        self, request: identity_pb2.ListBreakGlassGrantsRequest, context: grpc.ServicerContext
    ) -> identity_pb2.ListBreakGlassGrantsResponse:
        if request.actor_assertion != assertion_for(DPO, "identity"):
            abort(context, grpc.StatusCode.PERMISSION_DENIED, "not the officer")
        self.since.append(request.since.ToDatetime(tzinfo=UTC) if request.HasField("since") else None)
        return identity_pb2.ListBreakGlassGrantsResponse(grants=[GRANT])


AUDIT_SERVICE = audit_pb2.DESCRIPTOR.services_by_name["AuditService"]


@pytest.fixture
def fake_identity() -> Iterator[tuple[FakeIdentity, GrpcServer]]:
    yield from serving(ReviewingIdentity(), identity_pb2_grpc.add_IdentityServiceServicer_to_server, IDENTITY_SERVICE)


@pytest.fixture
def fake_audit() -> Iterator[tuple[FakeAudit, GrpcServer]]:
    yield from serving(FakeAudit(), audit_pb2_grpc.add_AuditServiceServicer_to_server, AUDIT_SERVICE)


@pytest.fixture
def audit(fake_audit: tuple[FakeAudit, GrpcServer]) -> FakeAudit:
    return fake_audit[0]


@pytest.fixture
def settings(settings: Settings, fake_audit: tuple[FakeAudit, GrpcServer]) -> Settings:
    return dataclasses.replace(settings, audit_target=f"127.0.0.1:{fake_audit[1].port}")


@pytest.fixture
def officer(browser: PortalBrowser) -> PortalBrowser:
    assert browser.sign_in(DPO).status_code == 303
    return browser


def _search(person: str = STUDENT.person_id, **extra: str) -> str:
    params = {"question": "accesses_to_person", "person": person, "purpose": "subject access request", **extra}
    return "/audit?" + "&".join(f"{key}={value}" for key, value in params.items())


def test_the_officer_finds_who_accessed_a_person(officer: PortalBrowser, audit: FakeAudit) -> None:
    response = officer.get(_search(**{"from": "2026-10-01", "to": "2026-10-05"}))

    page = response.get_data(as_text=True)
    assert response.status_code == 200, page
    [sent] = audit.queries
    assert sent.actor_assertion == assertion_for(DPO, "audit")
    assert sent.query.kind == audit_pb2.QUERY_KIND_ACCESSES_TO_PERSON
    assert sent.query.person_id == STUDENT.person_id
    assert sent.purpose == "subject access request"
    assert sent.query.occurred_from.ToDatetime(tzinfo=UTC) == datetime(2026, 10, 1, tzinfo=UTC)
    assert sent.query.occurred_until.ToDatetime(tzinfo=UTC) == datetime(2026, 10, 6, tzinfo=UTC)  # "to" inclusive
    assert "<table" in page
    assert "2026-10-05 09:30:00" in page
    assert "<strong>Refused</strong>" in page  # in words, not colour alone
    assert "student.view" in page
    assert "page=page-2" in page
    assert "format=csv" in page
    assert "format=json" in page


def test_the_other_questions_take_no_person(officer: PortalBrowser, audit: FakeAudit) -> None:
    kinds = {
        "refused_attempts": audit_pb2.QUERY_KIND_REFUSED_ATTEMPTS,
        "break_glass_grants": audit_pb2.QUERY_KIND_BREAK_GLASS_GRANTS,
        "module_changes": audit_pb2.QUERY_KIND_MODULE_CHANGES,
    }
    for question in kinds:
        assert officer.get(_search(person="", question=question)).status_code == 200
    assert [(q.query.kind, q.query.person_id) for q in audit.queries] == [(kind, "") for kind in kinds.values()]


def test_what_a_member_of_staff_did(officer: PortalBrowser, audit: FakeAudit) -> None:
    assert officer.get(_search(person=LOOKER, question="actions_by_person")).status_code == 200
    [sent] = audit.queries
    assert (sent.query.kind, sent.query.person_id) == (audit_pb2.QUERY_KIND_ACTIONS_BY_PERSON, LOOKER)


def test_a_bad_search_says_what_is_wrong_and_asks_nothing(officer: PortalBrowser, audit: FakeAudit) -> None:
    response = officer.get(_search(person="not an id!", purpose="curiosity", to="yesterday"))
    page = response.get_data(as_text=True)
    assert response.status_code == 400
    assert "Enter a student number (for example S1234567), a staff number, a staff user name or a Tend id." in page
    assert "Choose why you are searching the log." in page
    assert "Enter a date as year-month-day" in page
    assert audit.queries == []


def test_the_officer_searches_by_student_number_and_sees_the_name(
    officer: PortalBrowser, audit: FakeAudit, identity: FakeIdentity
) -> None:
    response = officer.get(_search(person=STUDENT_NUMBER))

    page = response.get_data(as_text=True)
    assert response.status_code == 200, page
    assert isinstance(identity, ReviewingIdentity)
    [look_up] = identity.look_ups
    assert (look_up.actor_assertion, look_up.identifier) == (assertion_for(DPO, "identity"), STUDENT_NUMBER)
    [sent] = audit.queries
    assert sent.query.person_id == STUDENT.person_id  # audit is asked by id, never by number
    assert f"Person: {STUDENT.display_name}, Tend id {STUDENT.person_id}." in page
    assert f"person {STUDENT.person_id}</a> ({STUDENT.display_name})" in page
    assert f"person={STUDENT_NUMBER}" in page  # the next page and downloads look the number up again

    download = officer.get(_search(person=STUDENT_NUMBER, format="csv").replace("/audit?", "/audit/export?"))
    assert download.status_code == 200
    assert [e.query.person_id for e in audit.exports] == [STUDENT.person_id]


def test_a_search_by_id_needs_no_look_up(officer: PortalBrowser, audit: FakeAudit, identity: FakeIdentity) -> None:
    assert officer.get(_search()).status_code == 200
    assert isinstance(identity, ReviewingIdentity)
    assert identity.look_ups == []


def test_an_unknown_number_is_named_on_the_form(officer: PortalBrowser, audit: FakeAudit) -> None:
    response = officer.get(_search(person="S0000000"))
    assert response.status_code == 400
    assert "No student or member of staff has this number or user name." in response.get_data(as_text=True)
    assert audit.queries == []


def test_a_look_up_identity_refuses_is_a_plain_refusal(signed_in_staff: PortalBrowser, audit: FakeAudit) -> None:
    response = signed_in_staff.get(_search(person=STUDENT_NUMBER))
    page = response.get_data(as_text=True)
    assert response.status_code == 403
    assert "You do not have access to these audit records" in page
    assert "Canary" not in page
    assert audit.queries == []


def test_the_blank_form_asks_nothing(officer: PortalBrowser, audit: FakeAudit) -> None:
    page = officer.get("/audit").get_data(as_text=True)
    assert '<label for="person">' in page
    assert audit.queries == []


def test_someone_audit_refuses_sees_a_plain_refusal(signed_in_staff: PortalBrowser, audit: FakeAudit) -> None:
    response = signed_in_staff.get(_search())
    page = response.get_data(as_text=True)
    assert response.status_code == 403
    assert "You do not have access to these audit records" in page
    assert "Canary" not in page
    assert len(audit.queries) == 1  # audit decided, not the portal


def test_the_audit_link_is_for_the_officer_only(officer: PortalBrowser) -> None:
    assert 'href="/audit"' in officer.get("/").get_data(as_text=True)


def test_other_staff_see_no_audit_link(signed_in_staff: PortalBrowser) -> None:
    assert 'href="/audit"' not in signed_in_staff.get("/").get_data(as_text=True)


def test_csv_download_is_streamed_from_audit(officer: PortalBrowser, audit: FakeAudit) -> None:
    response = officer.get(_search(format="csv").replace("/audit?", "/audit/export?"))

    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("text/csv")
    assert response.headers["Content-Disposition"].startswith('attachment; filename="tend-audit-accesses-to-person-')
    assert response.get_data() == b"seq,action\n3,student.view\n2,student.view\n"
    [sent] = audit.exports
    assert sent.format == audit_pb2.EXPORT_FORMAT_CSV
    assert sent.query.person_id == STUDENT.person_id
    assert sent.purpose == "subject access request"


def test_json_download(officer: PortalBrowser, audit: FakeAudit) -> None:
    response = officer.get(_search(format="json").replace("/audit?", "/audit/export?"))
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "application/json"
    assert json.loads(response.get_data()) == {"records": [{"seq": 3}]}


def test_a_refused_download_is_a_refusal_page_not_a_broken_file(
    signed_in_staff: PortalBrowser, audit: FakeAudit
) -> None:
    response = signed_in_staff.get(_search(format="csv").replace("/audit?", "/audit/export?"))
    assert response.status_code == 403
    assert "Content-Disposition" not in response.headers


def test_a_student_sees_who_accessed_their_own_record(signed_in_student: PortalBrowser, audit: FakeAudit) -> None:
    assert 'href="/my-record/accesses"' in signed_in_student.get("/me").get_data(as_text=True)

    response = signed_in_student.get("/my-record/accesses")

    page = response.get_data(as_text=True)
    assert response.status_code == 200, page
    [sent] = audit.queries
    assert sent.actor_assertion == assertion_for(STUDENT, "audit")
    assert (sent.query.kind, sent.query.person_id) == (audit_pb2.QUERY_KIND_ACCESSES_TO_PERSON, STUDENT.person_id)
    assert f"Person {LOOKER}" in page
    assert "?question=" not in page  # no links to the officer's searches
    older = signed_in_student.get("/my-record/accesses?page=page-2")
    assert older.status_code == 200
    assert audit.queries[-1].page_token == "page-2"


def test_the_officer_reviews_break_glass_grants(officer: PortalBrowser, identity: FakeIdentity) -> None:
    response = officer.get("/audit/break-glass?since=2026-10-01")
    page = response.get_data(as_text=True)
    assert response.status_code == 200, page
    assert "Welfare concern reported out of hours by security" in page
    assert STUDENT.person_id in page
    assert isinstance(identity, ReviewingIdentity)
    assert identity.since == [datetime(2026, 10, 1, tzinfo=UTC)]


def test_break_glass_review_is_refused_to_others(signed_in_staff: PortalBrowser) -> None:
    response = signed_in_staff.get("/audit/break-glass")
    assert response.status_code == 403
    assert "for the data protection officer" in response.get_data(as_text=True)
