"""The IndicatorsService gRPC API served in-process against a real database and a fake identity over real gRPC:
every answer filtered by identity's decision, and every read (and refusal) audited before the answer."""

from __future__ import annotations

from collections.abc import Iterator

import grpc
import psycopg
import pytest
from psycopg_pool import ConnectionPool
from tend.audit.v1 import events_pb2 as audit_pb2
from tend.identity.v1 import identity_pb2
from tend.indicators.v1 import indicators_pb2, indicators_pb2_grpc

from services.indicators.tests.fake_identity import FakeIdentity
from services.indicators.tests.grpc_harness import TUTOR, audit_records, code_of, serving
from services.indicators.tests.histories import RUN
from tend_indicators.directory import IdentityDirectory

STRANGER = "stranger-1"
ENGAGEMENT = identity_pb2.PURPOSE_ENGAGEMENT_SUPPORT
VISA = identity_pb2.PURPOSE_VISA_COMPLIANCE
COHORT = identity_pb2.PURPOSE_COHORT_PATTERNS


@pytest.fixture
def stub(
    pool: ConnectionPool, fake_identity: FakeIdentity, directory: IdentityDirectory, cohort: list[str]
) -> Iterator[indicators_pb2_grpc.IndicatorsServiceStub]:
    with serving(pool, fake_identity, directory) as client:
        yield client


def test_a_tutor_sees_their_tutees_case_and_the_read_is_audited(
    stub: indicators_pb2_grpc.IndicatorsServiceStub, fake_identity: FakeIdentity, dsn: str
) -> None:
    fake_identity.show_students(TUTOR, ENGAGEMENT, ["p_s00"])
    response = stub.ListCases(indicators_pb2.ListCasesRequest(actor_assertion=fake_identity.assertion(TUTOR)))
    (case,) = response.cases
    assert case.student_pseudonym == "p_s00"
    assert case.status == indicators_pb2.CASE_STATUS_OPEN
    assert [s.person_id for s in case.staff] == [TUTOR]
    (flag,) = case.flags
    assert flag.rule == "no_engagement"
    assert flag.values["threshold_days"] == 14
    assert "since 30 Jan 2026" in flag.sentence
    assert [entry.text.split(":")[0] for entry in case.history] == [
        "Flag raised",
        "Routed to the student's responsible staff (personal tutor).",
    ]
    (record,) = audit_records(dsn)
    assert (record.actor.id, record.subject.kind, record.subject.id) == (TUTOR, "pseudonym", "p_s00")
    assert (record.action, record.outcome) == ("indicators.case.view", audit_pb2.OUTCOME_ALLOWED)


def test_cases_of_students_identity_does_not_let_the_person_see_are_left_out(
    stub: indicators_pb2_grpc.IndicatorsServiceStub, fake_identity: FakeIdentity, dsn: str
) -> None:
    fake_identity.show_students(TUTOR, ENGAGEMENT, ["p_s05"])
    response = stub.ListCases(indicators_pb2.ListCasesRequest(actor_assertion=fake_identity.assertion(TUTOR)))
    assert list(response.cases) == []
    assert audit_records(dsn) == []


def test_the_engagement_summary_for_a_tutor_and_for_the_student_themself(
    stub: indicators_pb2_grpc.IndicatorsServiceStub, fake_identity: FakeIdentity, dsn: str
) -> None:
    fake_identity.show_students(TUTOR, ENGAGEMENT, ["p_s00"])
    fake_identity.show_students("student-s00", ENGAGEMENT, ["p_s00"])
    summaries = [
        stub.GetEngagementSummary(
            indicators_pb2.GetEngagementSummaryRequest(
                actor_assertion=assertion,
                student_pseudonym="p_s00",
                purpose=indicators_pb2.SUMMARY_PURPOSE_ENGAGEMENT_SUPPORT,
            )
        )
        for assertion in (fake_identity.assertion(TUTOR), fake_identity.assertion("student-s00", kind="student"))
    ]
    assert summaries[0] == summaries[1]  # the student sees what staff see
    summary = summaries[0]
    assert summary.as_of == "2026-02-16"
    (run,) = summary.module_runs
    assert run.module_run_id == RUN
    assert run.days_since_any_engagement == 17  # last active 30 Jan
    assert [s.source for s in run.sources] == ["vle"]
    assert run.weeks[0].week_starts_on == "2026-01-12"
    assert run.weeks[0].amount == 25
    assert run.weeks[3].amount == 0
    assert run.cohort.cohort_size == 12
    assert not run.cohort.suppressed
    assert [f.rule for f in summary.flags] == ["no_engagement"]
    assert [r.actor.id for r in audit_records(dsn)] == [TUTOR, "student-s00"]


def test_the_module_runs_label_comes_back_with_the_summary_its_flags_and_its_cohort(
    stub: indicators_pb2_grpc.IndicatorsServiceStub, fake_identity: FakeIdentity, pool: ConnectionPool
) -> None:
    fake_identity.show_students(TUTOR, ENGAGEMENT, ["p_s00"])
    request = indicators_pb2.GetEngagementSummaryRequest(
        actor_assertion=fake_identity.assertion(TUTOR),
        student_pseudonym="p_s00",
        purpose=indicators_pb2.SUMMARY_PURPOSE_ENGAGEMENT_SUPPORT,
    )
    (unnamed,) = stub.GetEngagementSummary(request).module_runs
    assert unnamed.module_run_label == ""  # the reference data gave none
    with pool.connection() as conn:
        conn.execute("UPDATE module_runs SET label = 'CS101 Programming, 2025/26' WHERE module_run_id = %s", (RUN,))
        conn.execute("UPDATE flags SET module_run_id = %s WHERE student_pseudonym = 'p_s00'", (RUN,))
    summary = stub.GetEngagementSummary(request)
    (run,) = summary.module_runs
    assert run.module_run_label == "CS101 Programming, 2025/26"
    assert [f.module_run_label for f in summary.flags] == ["CS101 Programming, 2025/26"]
    (case,) = stub.ListCases(indicators_pb2.ListCasesRequest(actor_assertion=fake_identity.assertion(TUTOR))).cases
    assert [f.module_run_label for f in case.flags] == ["CS101 Programming, 2025/26"]
    fake_identity.show_students("dean-1", COHORT, [], detail=identity_pb2.DETAIL_LEVEL_AGGREGATE)
    patterns = stub.GetCohortPatterns(
        indicators_pb2.GetCohortPatternsRequest(actor_assertion=fake_identity.assertion("dean-1"), module_run_id=RUN)
    )
    assert patterns.module_run_label == "CS101 Programming, 2025/26"


def test_a_person_without_a_relationship_is_refused_and_the_refusal_audited(
    stub: indicators_pb2_grpc.IndicatorsServiceStub, fake_identity: FakeIdentity, dsn: str
) -> None:
    request = indicators_pb2.GetEngagementSummaryRequest(
        actor_assertion=fake_identity.assertion(STRANGER),
        student_pseudonym="p_s00",
        purpose=indicators_pb2.SUMMARY_PURPOSE_ENGAGEMENT_SUPPORT,
    )
    assert code_of(lambda: stub.GetEngagementSummary(request)) == grpc.StatusCode.PERMISSION_DENIED
    (record,) = audit_records(dsn)
    assert (record.actor.id, record.outcome) == (STRANGER, audit_pb2.OUTCOME_REFUSED)


def test_visa_compliance_sees_attendance_against_contact_points_only(
    stub: indicators_pb2_grpc.IndicatorsServiceStub, fake_identity: FakeIdentity
) -> None:
    fake_identity.show_students("visa-1", VISA, ["p_s00"])
    summary = stub.GetEngagementSummary(
        indicators_pb2.GetEngagementSummaryRequest(
            actor_assertion=fake_identity.assertion("visa-1"),
            student_pseudonym="p_s00",
            purpose=indicators_pb2.SUMMARY_PURPOSE_VISA_COMPLIANCE,
        )
    )
    (run,) = summary.module_runs
    assert (run.sessions_expected, len(run.weeks), len(run.sources), run.days_since_any_engagement) == (0, 0, 0, 0)
    assert list(summary.flags) == []


def test_cohort_patterns_are_aggregates_and_refused_without_a_relationship(
    stub: indicators_pb2_grpc.IndicatorsServiceStub, fake_identity: FakeIdentity, dsn: str
) -> None:
    fake_identity.show_students("dean-1", COHORT, [], detail=identity_pb2.DETAIL_LEVEL_AGGREGATE)
    patterns = stub.GetCohortPatterns(
        indicators_pb2.GetCohortPatternsRequest(actor_assertion=fake_identity.assertion("dean-1"), module_run_id=RUN)
    )
    assert (patterns.cohort_size, patterns.suppressed, patterns.minimum_cohort_size) == (12, False, 10)
    assert patterns.weeks[0].median == 25
    assert patterns.weeks[3].active_share == pytest.approx(11 / 12)
    assert patterns.flagged_share == pytest.approx(1 / 12)
    refused = indicators_pb2.GetCohortPatternsRequest(
        actor_assertion=fake_identity.assertion(STRANGER), module_run_id=RUN
    )
    assert code_of(lambda: stub.GetCohortPatterns(refused)) == grpc.StatusCode.PERMISSION_DENIED
    assert [r.outcome for r in audit_records(dsn)] == [audit_pb2.OUTCOME_ALLOWED, audit_pb2.OUTCOME_REFUSED]


def test_a_small_cohort_is_suppressed(
    stub: indicators_pb2_grpc.IndicatorsServiceStub, fake_identity: FakeIdentity, pool: ConnectionPool
) -> None:
    with pool.connection() as conn:
        conn.execute("INSERT INTO cohort_summaries VALUES ('run-small', '2026-02-16', 6, NULL, NULL, NULL)")
    fake_identity.show_students("dean-1", COHORT, [], detail=identity_pb2.DETAIL_LEVEL_AGGREGATE)
    patterns = stub.GetCohortPatterns(
        indicators_pb2.GetCohortPatternsRequest(
            actor_assertion=fake_identity.assertion("dean-1"), module_run_id="run-small"
        )
    )
    assert (patterns.suppressed, list(patterns.weeks), patterns.median_attendance_rate) == (True, [], 0.0)


def test_an_invalid_assertion_is_unauthenticated(stub: indicators_pb2_grpc.IndicatorsServiceStub) -> None:
    request = indicators_pb2.ListCasesRequest(actor_assertion="not-a-token")
    assert code_of(lambda: stub.ListCases(request)) == grpc.StatusCode.UNAUTHENTICATED


def test_a_read_fails_when_the_audit_record_cannot_be_written(
    stub: indicators_pb2_grpc.IndicatorsServiceStub, fake_identity: FakeIdentity, dsn: str
) -> None:
    fake_identity.show_students(TUTOR, ENGAGEMENT, ["p_s00"])
    with psycopg.connect(dsn) as conn:
        conn.execute("ALTER TABLE outbox RENAME TO outbox_gone")
    request = indicators_pb2.GetEngagementSummaryRequest(
        actor_assertion=fake_identity.assertion(TUTOR),
        student_pseudonym="p_s00",
        purpose=indicators_pb2.SUMMARY_PURPOSE_ENGAGEMENT_SUPPORT,
    )
    with pytest.raises(grpc.RpcError) as raised:
        stub.GetEngagementSummary(request)
    assert raised.value.code() == grpc.StatusCode.UNAVAILABLE
    assert "could not be audited" in (raised.value.details() or "")


def test_identity_down_means_no_answer(
    stub: indicators_pb2_grpc.IndicatorsServiceStub, fake_identity: FakeIdentity
) -> None:
    assertion = fake_identity.assertion(TUTOR)
    stub.ListCases(indicators_pb2.ListCasesRequest(actor_assertion=assertion))  # keys fetched and cached
    fake_identity.unavailable = True
    request = indicators_pb2.ListCasesRequest(actor_assertion=assertion)
    assert code_of(lambda: stub.ListCases(request)) == grpc.StatusCode.UNAVAILABLE
