"""Recomputing flags against a real database and a fake identity: flags open and route cases with their events in the
outbox; recomputing again changes nothing; a correction (a late attendance mark, a resent file) withdraws a flag and
the case says so."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime

import psycopg
from psycopg_pool import ConnectionPool
from tend.indicators.v1 import events_pb2

from services.indicators.tests.fake_identity import FakeIdentity
from services.indicators.tests.histories import CONFIG, NOW, OPTIONS, RUN, at
from tend_indicators import attendance
from tend_indicators.directory import IdentityDirectory
from tend_indicators.ingest import reference
from tend_indicators.ingest.records import EngagementRecord, store_records
from tend_indicators.recompute import recompute
from tend_indicators.rules_config import RulesConfig, parse_rules_config


def run(
    pool: ConnectionPool, directory: IdentityDirectory, as_of: date, config: RulesConfig = CONFIG
) -> tuple[int, int]:
    result = recompute(pool, directory, config, OPTIONS, as_of, now=NOW)
    return result.raised, result.withdrawn


def outbox(dsn: str) -> list[tuple[str, bytes]]:
    with psycopg.connect(dsn) as conn:
        rows = conn.execute("SELECT routing_key, body FROM case_event_outbox ORDER BY id").fetchall()
        assert conn.execute("SELECT count(*) FROM outbox").fetchone() == (0,)  # the shared outbox is for audit
    return [(r[0], bytes(r[1])) for r in rows]


def case_rows(dsn: str) -> list[tuple[str, str, bool]]:
    with psycopg.connect(dsn) as conn:
        return conn.execute("SELECT student_pseudonym, status, routed FROM cases").fetchall()


def entries(dsn: str) -> list[str]:
    with psycopg.connect(dsn) as conn:
        return [r[0] for r in conn.execute("SELECT text FROM case_entries ORDER BY entry_id")]


def test_a_flag_opens_and_routes_a_case_and_publishes_pseudonyms_only(
    pool: ConnectionPool, directory: IdentityDirectory, fake_identity: FakeIdentity, cohort: list[str], dsn: str
) -> None:
    fake_identity.responsible["p_s00"] = [("tutor-1", "personal_tutor"), ("lead-1", "programme_lead")]
    assert run(pool, directory, date(2026, 2, 12)) == (0, 0)  # 13 days without engagement
    assert run(pool, directory, date(2026, 2, 13)) == (1, 0)  # 14 days
    assert case_rows(dsn) == [("p_s00", "open", True)]
    with psycopg.connect(dsn) as conn:
        staff = conn.execute("SELECT person_id, relationship FROM case_staff ORDER BY position").fetchall()
        flag = conn.execute("SELECT rule, episode, sentence FROM flags").fetchone()
    assert staff == [("tutor-1", "personal_tutor"), ("lead-1", "programme_lead")]
    assert flag is not None
    assert flag[:2] == ("no_engagement", "2026-01-31")
    assert "since 30 Jan 2026" in flag[2]
    keys = [key for key, _body in outbox(dsn)]
    assert keys == ["indicators.indicator_raised.v1", "indicators.case_updated.v1", "indicators.case_updated.v1"]
    raised = events_pb2.IndicatorRaised.FromString(outbox(dsn)[0][1])
    assert (raised.student_pseudonym, raised.rule, raised.observed_on) == ("p_s00", "no_engagement", "2026-02-13")
    routed = events_pb2.CaseUpdated.FromString(outbox(dsn)[2][1])
    assert routed.change == events_pb2.CASE_CHANGE_ROUTED
    assert list(routed.staff_person_ids) == ["tutor-1", "lead-1"]
    assert entries(dsn)[1] == "Routed to the student's responsible staff (personal tutor, programme lead)."


def test_recomputing_again_changes_nothing(
    pool: ConnectionPool, directory: IdentityDirectory, cohort: list[str], dsn: str
) -> None:
    run(pool, directory, date(2026, 2, 13))
    before = (outbox(dsn), case_rows(dsn), entries(dsn))
    assert run(pool, directory, date(2026, 2, 13)) == (0, 0)
    assert (outbox(dsn), case_rows(dsn), entries(dsn)) == before
    # A day later the gap is longer: the same flag, its evidence brought up to date, no new event.
    assert run(pool, directory, date(2026, 2, 14)) == (0, 0)
    assert outbox(dsn) == before[0]
    with psycopg.connect(dsn) as conn:
        assert conn.execute("SELECT evidence->'values'->>'inactive_days' FROM flags").fetchone() == ("15",)


def test_a_late_attendance_mark_withdraws_the_flag_and_closes_the_case(
    pool: ConnectionPool, directory: IdentityDirectory, cohort: list[str], dsn: str
) -> None:
    run(pool, directory, date(2026, 2, 13))
    # Staff mark the student present at a session on 5 Feb, inside the gap.
    mark = attendance.AttendanceMark(
        event_id="correction-1",
        session_id=uuid.uuid4(),
        student_pseudonym="p_s00",
        module_run_id=RUN,
        session_starts_at=at(date(2026, 2, 5), 9),
        recorded_at=at(date(2026, 2, 16), 9),
        source="staff_correction",
    )
    with pool.connection() as conn, conn.transaction(), conn.cursor() as cur:
        assert attendance.store_attendance(cur, mark)
    assert run(pool, directory, date(2026, 2, 16)) == (0, 1)
    assert case_rows(dsn) == [("p_s00", "closed", True)]
    with psycopg.connect(dsn) as conn:
        status = conn.execute("SELECT status, withdrawn_reason FROM flags").fetchone()
    assert status is not None
    assert status[0] == "withdrawn"
    assert "no longer finds no engagement as of 2026-02-13" in status[1]
    assert entries(dsn)[-2].startswith("Flag withdrawn:")
    assert entries(dsn)[-1] == "Case closed: every flag was withdrawn before anyone acted on it."
    changes = [
        events_pb2.CaseUpdated.FromString(body).change
        for key, body in outbox(dsn)
        if key == "indicators.case_updated.v1"
    ]
    assert changes[-2:] == [events_pb2.CASE_CHANGE_FLAG_WITHDRAWN, events_pb2.CASE_CHANGE_CLOSED]
    assert "indicators.indicator_withdrawn.v1" in [key for key, _ in outbox(dsn)]


def test_a_flag_whose_evidence_held_is_not_withdrawn_when_the_student_returns(
    pool: ConnectionPool, directory: IdentityDirectory, cohort: list[str], dsn: str
) -> None:
    run(pool, directory, date(2026, 2, 13))
    with pool.connection() as conn, conn.transaction(), conn.cursor() as cur:
        store_records(cur, [EngagementRecord("t:return", "p_s00", RUN, "vle", "viewed", at(date(2026, 2, 16)))])
    assert run(pool, directory, date(2026, 2, 17)) == (0, 0)
    assert case_rows(dsn) == [("p_s00", "open", True)]


def test_a_resent_file_with_the_missing_submission_withdraws_the_missed_assignment_flag(
    pool: ConnectionPool, directory: IdentityDirectory, cohort: list[str], dsn: str
) -> None:
    config = parse_rules_config(
        {"defaults": {"no_engagement": {"enabled": False}, "low_engagement": {"enabled": False}}}
    )
    with pool.connection() as conn, conn.transaction(), conn.cursor() as cur:
        due = datetime(2026, 2, 6, 23, 59, tzinfo=UTC)
        reference.store_assignments(cur, [reference.ExpectedAssignment("essay-1", RUN, due)])
        store_records(
            cur,
            [
                EngagementRecord(f"sub:{p}", p, RUN, "assignment", "submitted", at(date(2026, 2, 5)), 1, "essay-1")
                for p in cohort[2:]
            ],
        )
    assert run(pool, directory, date(2026, 2, 16), config) == (2, 0)  # s00 (early, quiet) and s01 (after grace)
    with pool.connection() as conn, conn.transaction(), conn.cursor() as cur:
        store_records(
            cur,
            [
                EngagementRecord(
                    "sub:p_s01", "p_s01", RUN, "assignment", "submitted", at(date(2026, 2, 6)), 1, "essay-1"
                )
            ],
        )
    assert run(pool, directory, date(2026, 2, 17), config) == (0, 1)
    with psycopg.connect(dsn) as conn:
        flags: dict[str, str] = dict(conn.execute("SELECT student_pseudonym, status FROM flags").fetchall())
    assert flags == {"p_s00": "raised", "p_s01": "withdrawn"}


def test_sentences_name_the_module_run_and_assignment_once_the_reference_data_labels_them(
    pool: ConnectionPool, directory: IdentityDirectory, cohort: list[str], dsn: str
) -> None:
    config = parse_rules_config(
        {"defaults": {"no_engagement": {"enabled": False}, "low_engagement": {"enabled": False}}}
    )
    due = datetime(2026, 2, 6, 23, 59, tzinfo=UTC)

    def sentences() -> list[str]:
        with psycopg.connect(dsn) as conn:
            return [r[0] for r in conn.execute("SELECT sentence FROM flags ORDER BY student_pseudonym")]

    with pool.connection() as conn, conn.transaction(), conn.cursor() as cur:
        reference.store_assignments(cur, [reference.ExpectedAssignment("essay-1", RUN, due)])
    assert run(pool, directory, date(2026, 2, 16), config) == (len(cohort), 0)  # nobody submitted
    assert all(s.startswith("An assignment due 6 Feb 2026 was not submitted") for s in sentences())
    with pool.connection() as conn, conn.transaction(), conn.cursor() as cur:
        reference.store_module_runs(cur, [reference.ModuleRun(RUN, label="CS101 Programming, 2026/27")])
        reference.store_assignments(cur, [reference.ExpectedAssignment("essay-1", RUN, due, "Essay 1")])
    events_before = len(outbox(dsn))
    # The standing flags' evidence is brought up to date: no new flag, no new event.
    assert run(pool, directory, date(2026, 2, 16), config) == (0, 0)
    assert len(outbox(dsn)) == events_before
    found = sentences()
    assert all(s.startswith("Essay 1 (CS101 Programming, 2026/27), due 6 Feb 2026, was not submitted") for s in found)
    assert not any(RUN in s or "essay-1" in s for s in found)


def test_cases_wait_for_identity_and_are_routed_once_it_answers(
    pool: ConnectionPool, directory: IdentityDirectory, fake_identity: FakeIdentity, cohort: list[str], dsn: str
) -> None:
    fake_identity.unavailable = True
    assert run(pool, directory, date(2026, 2, 13)) == (1, 0)
    assert case_rows(dsn) == [("p_s00", "open", False)]
    fake_identity.unavailable = False
    run(pool, directory, date(2026, 2, 13))
    assert case_rows(dsn) == [("p_s00", "open", True)]
