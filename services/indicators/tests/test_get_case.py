"""GetCase through real gRPC, a real database and a fake identity over real gRPC: one case, decided as ListCases
decides (routed to the person, for a student identity lets them see), audited once for the one student; a case that
does not exist and one that is not the person's get the same NOT_FOUND, so case ids cannot be probed."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import grpc
import psycopg
import pytest
from psycopg_pool import ConnectionPool
from tend.audit.v1 import events_pb2 as audit_pb2
from tend.identity.v1 import identity_pb2
from tend.indicators.v1 import indicators_pb2, indicators_pb2_grpc

from services.indicators.tests.fake_identity import FakeIdentity
from services.indicators.tests.grpc_harness import TUTOR, audit_records, serving
from tend_indicators.directory import IdentityDirectory

ENGAGEMENT = identity_pb2.PURPOSE_ENGAGEMENT_SUPPORT
LECTURER = "lecturer-1"  # may see the student, but the case is routed to TUTOR
STRANGER = "stranger-1"


@pytest.fixture
def stub(
    pool: ConnectionPool, fake_identity: FakeIdentity, directory: IdentityDirectory, cohort: list[str]
) -> Iterator[indicators_pb2_grpc.IndicatorsServiceStub]:
    with serving(pool, fake_identity, directory) as client:
        yield client


@pytest.fixture
def case_id(dsn: str, stub: indicators_pb2_grpc.IndicatorsServiceStub) -> str:
    with psycopg.connect(dsn) as conn:
        row = conn.execute("SELECT case_id FROM cases WHERE student_pseudonym = 'p_s00'").fetchone()
    assert row is not None
    return str(row[0])


def get_case(
    stub: indicators_pb2_grpc.IndicatorsServiceStub, assertion: str, case_id: str
) -> indicators_pb2.GetCaseResponse:
    return stub.GetCase(indicators_pb2.GetCaseRequest(actor_assertion=assertion, case_id=case_id))  # type: ignore[no-any-return]


def refusal(stub: indicators_pb2_grpc.IndicatorsServiceStub, assertion: str, case_id: str) -> tuple[object, str]:
    with pytest.raises(grpc.RpcError) as raised:
        get_case(stub, assertion, case_id)
    return raised.value.code(), raised.value.details() or ""


def test_the_tutor_the_case_is_routed_to_gets_it_and_the_read_is_audited_once(
    stub: indicators_pb2_grpc.IndicatorsServiceStub, fake_identity: FakeIdentity, case_id: str, dsn: str
) -> None:
    fake_identity.show_students(TUTOR, ENGAGEMENT, ["p_s00", "p_s01", "p_s02"])
    case = get_case(stub, fake_identity.assertion(TUTOR), case_id).case
    listed = stub.ListCases(indicators_pb2.ListCasesRequest(actor_assertion=fake_identity.assertion(TUTOR)))
    assert [case] == list(listed.cases)  # the same case as ListCases gives
    assert case.case_id == case_id
    assert case.student_pseudonym == "p_s00"
    assert [f.rule for f in case.flags] == ["no_engagement"]
    get_record, list_record = audit_records(dsn)
    assert (get_record.actor.id, get_record.subject.kind, get_record.subject.id) == (TUTOR, "pseudonym", "p_s00")
    assert (get_record.action, get_record.outcome) == ("indicators.case.view", audit_pb2.OUTCOME_ALLOWED)
    assert get_record.purpose == list_record.purpose == "engagement support"
    assert list_record.action == get_record.action


def test_a_closed_case_is_returned_too(
    stub: indicators_pb2_grpc.IndicatorsServiceStub, fake_identity: FakeIdentity, case_id: str, dsn: str
) -> None:
    with psycopg.connect(dsn) as conn:
        conn.execute("UPDATE cases SET status = 'closed' WHERE case_id = %s", (case_id,))
    fake_identity.show_students(TUTOR, ENGAGEMENT, ["p_s00"])
    case = get_case(stub, fake_identity.assertion(TUTOR), case_id).case
    assert case.status == indicators_pb2.CASE_STATUS_CLOSED


@pytest.mark.parametrize(
    ("person", "kind", "visible"),
    [
        pytest.param(LECTURER, "staff", ["p_s00"], id="staff-who-may-see-the-student-but-not-routed"),
        pytest.param(STRANGER, "staff", [], id="other-staff"),
        pytest.param(TUTOR, "staff", ["p_s01"], id="routed-but-identity-no-longer-lets-see-the-student"),
        pytest.param("student-s00", "student", ["p_s00"], id="the-student-themself"),
    ],
)
def test_a_case_that_is_not_the_persons_is_not_found_like_an_unknown_one_and_the_refusal_audited(
    stub: indicators_pb2_grpc.IndicatorsServiceStub,
    fake_identity: FakeIdentity,
    case_id: str,
    dsn: str,
    person: str,
    kind: str,
    visible: list[str],
) -> None:
    fake_identity.show_students(person, ENGAGEMENT, visible)
    assertion = fake_identity.assertion(person, kind=kind)
    not_theirs = refusal(stub, assertion, case_id)
    unknown = refusal(stub, assertion, str(uuid.uuid4()))
    assert not_theirs == unknown  # nothing tells the two apart
    assert not_theirs[0] == grpc.StatusCode.NOT_FOUND
    records = audit_records(dsn)
    assert [(r.actor.id, r.action, r.outcome) for r in records] == [
        (person, "indicators.case.view", audit_pb2.OUTCOME_REFUSED)
    ] * 2
    assert (records[0].subject.kind, records[0].subject.id) == ("pseudonym", "p_s00")
    assert records[1].subject.kind == "case"


def test_an_unknown_id_is_not_found_and_a_malformed_one_is_named(
    stub: indicators_pb2_grpc.IndicatorsServiceStub, fake_identity: FakeIdentity, case_id: str
) -> None:
    fake_identity.show_students(TUTOR, ENGAGEMENT, ["p_s00"])
    code, _ = refusal(stub, fake_identity.assertion(TUTOR), str(uuid.uuid4()))
    assert code == grpc.StatusCode.NOT_FOUND
    code, details = refusal(stub, fake_identity.assertion(TUTOR), "not-a-case")
    assert code == grpc.StatusCode.INVALID_ARGUMENT
    assert "case_id must be" in details


def test_an_invalid_assertion_is_unauthenticated(
    stub: indicators_pb2_grpc.IndicatorsServiceStub, case_id: str, dsn: str
) -> None:
    code, _ = refusal(stub, "not-an-assertion", case_id)
    assert code == grpc.StatusCode.UNAUTHENTICATED
    assert audit_records(dsn) == []
