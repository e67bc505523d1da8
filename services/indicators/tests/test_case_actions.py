"""RecordCaseAction through real gRPC, a real database and a fake identity over real gRPC: only staff identity lets
act for the student may; each action is a line of the case's history with who wrote it, a CaseUpdated event and an
audit record, once per request id; closing ends the case, and a later flag opens a new one."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import date

import grpc
import psycopg
import pytest
from psycopg_pool import ConnectionPool
from tend.audit.v1 import events_pb2 as audit_pb2
from tend.identity.v1 import identity_pb2
from tend.indicators.v1 import events_pb2, indicators_pb2, indicators_pb2_grpc

from services.indicators.tests.fake_identity import FakeIdentity
from services.indicators.tests.grpc_harness import NOW, TUTOR, audit_records, code_of, serving
from services.indicators.tests.histories import CONFIG, OPTIONS, RUN, at
from tend_indicators.directory import IdentityDirectory
from tend_indicators.ingest.records import EngagementRecord, store_records
from tend_indicators.recompute import recompute

ENGAGEMENT = identity_pb2.PURPOSE_ENGAGEMENT_SUPPORT
NOTE = indicators_pb2.CASE_ACTION_KIND_NOTE
CLOSE = indicators_pb2.CASE_ACTION_KIND_CLOSE


@pytest.fixture
def stub(
    pool: ConnectionPool, fake_identity: FakeIdentity, directory: IdentityDirectory, cohort: list[str]
) -> Iterator[indicators_pb2_grpc.IndicatorsServiceStub]:
    fake_identity.show_students(TUTOR, ENGAGEMENT, ["p_s00"])
    with serving(pool, fake_identity, directory) as client:
        yield client


@pytest.fixture
def case_id(dsn: str, stub: indicators_pb2_grpc.IndicatorsServiceStub) -> str:
    with psycopg.connect(dsn) as conn:
        row = conn.execute("SELECT case_id FROM cases WHERE student_pseudonym = 'p_s00'").fetchone()
    assert row is not None
    return str(row[0])


def request(
    assertion: str, case_id: str, kind: int = NOTE, note: str = "Spoke after the lecture.", request_id: str = ""
) -> indicators_pb2.RecordCaseActionRequest:
    return indicators_pb2.RecordCaseActionRequest(
        actor_assertion=assertion,
        case_id=case_id,
        kind=kind,  # type: ignore[arg-type]
        note=note,
        request_id=request_id or str(uuid.uuid4()),
    )


def case_events(dsn: str) -> list[events_pb2.CaseUpdated]:
    with psycopg.connect(dsn) as conn:
        rows = conn.execute(
            "SELECT body FROM case_event_outbox WHERE routing_key = 'indicators.case_updated.v1' ORDER BY id"
        ).fetchall()
    return [events_pb2.CaseUpdated.FromString(bytes(row[0])) for row in rows]


def counts(dsn: str) -> tuple[int, int, int, int]:
    with psycopg.connect(dsn) as conn:
        row = conn.execute(
            "SELECT (SELECT count(*) FROM case_entries), (SELECT count(*) FROM case_actions),"
            " (SELECT count(*) FROM case_event_outbox), (SELECT count(*) FROM outbox)"
        ).fetchone()
    assert row is not None
    return row


def test_a_note_goes_into_the_history_with_who_wrote_it_and_is_published_and_audited(
    stub: indicators_pb2_grpc.IndicatorsServiceStub, fake_identity: FakeIdentity, case_id: str, dsn: str
) -> None:
    request_id = str(uuid.uuid4())
    response = stub.RecordCaseAction(request(fake_identity.assertion(TUTOR), case_id, request_id=request_id))
    assert response.case.case_id == case_id
    assert response.case.status == indicators_pb2.CASE_STATUS_OPEN
    last = response.case.history[-1]
    assert (last.text, last.actor_person_id) == ("Note: Spoke after the lecture.", TUTOR)
    assert response.case.history[0].actor_person_id == ""  # the flag's line: no person wrote it
    event = case_events(dsn)[-1]
    assert event.change == events_pb2.CASE_CHANGE_ACTION_RECORDED
    assert (event.case_id, event.student_pseudonym, event.meta.request_id) == (case_id, "p_s00", request_id)
    assert list(event.staff_person_ids) == [TUTOR]
    assert event.raised_flags == 1
    (record,) = audit_records(dsn)
    assert (record.actor.id, record.action, record.subject.id) == (TUTOR, "indicators.case.record_action", "p_s00")
    assert record.outcome == audit_pb2.OUTCOME_ALLOWED
    assert "Spoke" not in str(record)  # the note stays in the case


def test_repeating_a_request_records_it_once_and_a_reused_key_is_refused(
    stub: indicators_pb2_grpc.IndicatorsServiceStub, fake_identity: FakeIdentity, case_id: str, dsn: str
) -> None:
    first = request(fake_identity.assertion(TUTOR), case_id, kind=indicators_pb2.CASE_ACTION_KIND_CONTACTED)
    answered = stub.RecordCaseAction(first)
    before = counts(dsn)
    again = stub.RecordCaseAction(first)
    assert again.case.history == answered.case.history
    assert counts(dsn) == before
    reused = request(fake_identity.assertion(TUTOR), case_id, note="Something else.", request_id=first.request_id)
    assert code_of(lambda: stub.RecordCaseAction(reused)) == grpc.StatusCode.ALREADY_EXISTS
    assert counts(dsn) == before


def test_closing_sets_the_outcome_and_nothing_more_is_recorded(
    stub: indicators_pb2_grpc.IndicatorsServiceStub, fake_identity: FakeIdentity, case_id: str, dsn: str
) -> None:
    outcome = "Met the student; extension agreed, back on track."
    closed = stub.RecordCaseAction(request(fake_identity.assertion(TUTOR), case_id, kind=CLOSE, note=outcome))
    assert closed.case.status == indicators_pb2.CASE_STATUS_CLOSED
    assert closed.case.history[-1].text == f"Case closed by staff, with the outcome: {outcome}"
    assert case_events(dsn)[-1].change == events_pb2.CASE_CHANGE_CLOSED_BY_STAFF
    assert audit_records(dsn)[-1].action == "indicators.case.close"
    with psycopg.connect(dsn) as conn:
        assert conn.execute("SELECT status, outcome FROM cases").fetchall() == [("closed", outcome)]
    later = request(fake_identity.assertion(TUTOR), case_id)
    assert code_of(lambda: stub.RecordCaseAction(later)) == grpc.StatusCode.FAILED_PRECONDITION


def test_after_a_close_the_same_flag_opens_nothing_and_a_new_flag_opens_a_new_case(
    stub: indicators_pb2_grpc.IndicatorsServiceStub,
    fake_identity: FakeIdentity,
    case_id: str,
    dsn: str,
    pool: ConnectionPool,
    directory: IdentityDirectory,
) -> None:
    stub.RecordCaseAction(request(fake_identity.assertion(TUTOR), case_id, kind=CLOSE, note="Resolved."))
    # The flag that stood when the case closed is found again: no new case.
    assert recompute(pool, directory, CONFIG, OPTIONS, date(2026, 2, 16), now=NOW).raised == 0
    with psycopg.connect(dsn) as conn:
        assert conn.execute("SELECT count(*) FROM cases").fetchone() == (1,)
    # The student engages on 17 Feb, then is quiet for another 14 days: a new episode, a new case.
    with pool.connection() as conn, conn.transaction(), conn.cursor() as cur:
        store_records(cur, [EngagementRecord("t:back", "p_s00", RUN, "vle", "viewed", at(date(2026, 2, 17)))])
    recompute(pool, directory, CONFIG, OPTIONS, date(2026, 3, 3), now=NOW)
    with psycopg.connect(dsn) as conn:
        cases: list[tuple[str, str]] = conn.execute(
            "SELECT case_id::text, status FROM cases ORDER BY opened_at, status"
        ).fetchall()
        flags = conn.execute(
            "SELECT case_id::text, episode, status FROM flags WHERE rule = 'no_engagement' ORDER BY episode"
        ).fetchall()
    assert len(cases) == 2
    assert dict(cases)[case_id] == "closed"
    (new_case,) = [c for c, status in cases if status == "open"]
    assert flags == [(case_id, "2026-01-31", "raised"), (new_case, "2026-02-18", "raised")]


def test_a_flag_of_a_closed_case_whose_evidence_goes_is_withdrawn_and_the_case_stays_closed(
    stub: indicators_pb2_grpc.IndicatorsServiceStub,
    fake_identity: FakeIdentity,
    case_id: str,
    dsn: str,
    pool: ConnectionPool,
    directory: IdentityDirectory,
) -> None:
    stub.RecordCaseAction(request(fake_identity.assertion(TUTOR), case_id, kind=CLOSE, note="Resolved."))
    with pool.connection() as conn, conn.transaction(), conn.cursor() as cur:  # a resent file fills the gap
        store_records(cur, [EngagementRecord("t:gap", "p_s00", RUN, "vle", "viewed", at(date(2026, 2, 6)))])
    assert recompute(pool, directory, CONFIG, OPTIONS, date(2026, 2, 16), now=NOW).withdrawn == 1
    with psycopg.connect(dsn) as conn:
        assert conn.execute("SELECT status FROM flags").fetchall() == [("withdrawn",)]
        assert conn.execute("SELECT status FROM cases").fetchall() == [("closed",)]
        last = conn.execute("SELECT text FROM case_entries ORDER BY entry_id DESC LIMIT 1").fetchone()
    assert last is not None
    assert last[0].startswith("Flag withdrawn:")
    # Nothing claims the case changed status: only the flag's own event.
    assert case_events(dsn)[-1].change == events_pb2.CASE_CHANGE_CLOSED_BY_STAFF


def test_people_identity_does_not_let_act_are_refused_and_audited(
    stub: indicators_pb2_grpc.IndicatorsServiceStub, fake_identity: FakeIdentity, case_id: str, dsn: str
) -> None:
    fake_identity.show_students("student-s00", ENGAGEMENT, ["p_s00"])  # a student sees their own engagement...
    for assertion in (fake_identity.assertion("stranger-1"), fake_identity.assertion("student-s00", kind="student")):
        refused = request(assertion, case_id)
        assert code_of(lambda: stub.RecordCaseAction(refused)) == grpc.StatusCode.PERMISSION_DENIED  # noqa: B023
    assert [(r.actor.id, r.outcome) for r in audit_records(dsn)] == [
        ("stranger-1", audit_pb2.OUTCOME_REFUSED),
        ("student-s00", audit_pb2.OUTCOME_REFUSED),
    ]
    with psycopg.connect(dsn) as conn:
        assert conn.execute("SELECT count(*) FROM case_actions").fetchone() == (0,)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"case_id": "not-a-uuid"}, "case_id must be"),
        ({"kind": indicators_pb2.CASE_ACTION_KIND_UNSPECIFIED}, "kind must be"),
        ({"note": "  "}, "note is required"),
        ({"note": "x" * 2001}, "at most 2000 characters"),
        ({"request_id": "r-1"}, "request_id must be a UUID"),
    ],
)
def test_bad_requests_are_refused_naming_what_is_wrong(
    stub: indicators_pb2_grpc.IndicatorsServiceStub,
    fake_identity: FakeIdentity,
    case_id: str,
    change: dict[str, object],
    message: str,
) -> None:
    bad = request(fake_identity.assertion(TUTOR), case_id)
    for name, value in change.items():
        setattr(bad, name, value)
    with pytest.raises(grpc.RpcError) as raised:
        stub.RecordCaseAction(bad)
    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert message in (raised.value.details() or "")


def test_an_unknown_case_is_not_found(
    stub: indicators_pb2_grpc.IndicatorsServiceStub, fake_identity: FakeIdentity, case_id: str
) -> None:
    missing = request(fake_identity.assertion(TUTOR), str(uuid.uuid4()))
    assert code_of(lambda: stub.RecordCaseAction(missing)) == grpc.StatusCode.NOT_FOUND
    long_note = request(fake_identity.assertion(TUTOR), case_id, note="x" * 2000)
    assert stub.RecordCaseAction(long_note).case.history[-1].text == "Note: " + "x" * 2000
