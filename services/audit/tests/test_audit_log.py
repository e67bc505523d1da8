"""The audit log: each event appended once, and every kind of tampering found and named."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable

import psycopg
import pytest
from tend.audit.v1 import events_pb2

from tend_audit import records
from tend_audit.verify import verify_chain
from tend_common.messaging.consumer import Delivery, PoisonMessage
from tend_common.messaging.envelope import envelope, new_meta


def _delivery(action: str = "teaching_session.open", schema_version: int = 1, actor_id: str = "person-1") -> Delivery:
    message = events_pb2.AuditEvent(
        meta=new_meta("checkin"),
        actor=events_pb2.Actor(kind=events_pb2.ACTOR_KIND_PERSON, id=actor_id),
        action=action,
        subject=events_pb2.Subject(kind="teaching_session", id="s-1"),
        outcome=events_pb2.OUTCOME_ALLOWED,
        origin_service="checkin",
    )
    event = envelope(message, records.ROUTING_KEY)
    return Delivery(event.routing_key, event.event_id, event.type_name, schema_version, event.body, False)


@pytest.fixture
def dsn(database_factory: Callable[[str | None], str]) -> str:
    return database_factory("tend_audit.migrations")


def _append(dsn: str, deliveries: list[Delivery]) -> None:
    with psycopg.connect(dsn) as conn, conn.cursor() as cur:
        for delivery in deliveries:
            records.append(cur, records.parse_delivery(delivery))


def _verify(dsn: str) -> tuple[bool, int | None, str]:
    with psycopg.connect(dsn) as conn:
        result = verify_chain(conn)
    return result.ok, result.first_bad_seq, result.problem


def test_events_are_appended_in_order_once(dsn: str) -> None:
    deliveries = [_delivery(action=f"action.{n}") for n in range(5)]
    _append(dsn, [*deliveries, deliveries[2]])
    with psycopg.connect(dsn) as conn:
        rows = conn.execute("SELECT seq, action, actor_kind, outcome FROM audit_log ORDER BY seq").fetchall()
    assert rows == [(n + 1, f"action.{n}", "person", "allowed") for n in range(5)]
    assert _verify(dsn) == (True, None, "")


@pytest.mark.parametrize(
    ("delivery", "reason"),
    [
        (_delivery(schema_version=7), "unsupported schema version 7"),
        (_delivery(action=""), "missing action"),
        (_delivery(actor_id=""), "missing actor.id"),
    ],
)
def test_malformed_events_are_poison(delivery: Delivery, reason: str) -> None:
    with pytest.raises(PoisonMessage, match=reason):
        records.parse_delivery(delivery)


TAMPERING = {
    "a column changed": (
        "UPDATE audit_log SET actor_id = 'someone-else' WHERE seq = 3",
        3,
        "a column no longer matches",
    ),
    "a body replaced": (
        "UPDATE audit_log SET event_body = (SELECT event_body FROM audit_log WHERE seq = 1) WHERE seq = 3",
        3,
        "event body changed",
    ),
    "a record removed": ("DELETE FROM audit_log WHERE seq = 3", 3, "record 3 removed"),
    "the last record removed": ("DELETE FROM audit_log WHERE seq = 5", 5, "removed from the end"),
    "two records swapped": (
        "UPDATE audit_log SET seq = CASE seq WHEN 2 THEN -3 WHEN 3 THEN -2 END WHERE seq IN (2, 3);"
        " UPDATE audit_log SET seq = -seq WHERE seq < 0",
        2,
        "chain broken",
    ),
    "a record inserted": (
        "UPDATE audit_log SET seq = -(seq + 1) WHERE seq >= 4; UPDATE audit_log SET seq = -seq WHERE seq < 0;"
        " INSERT INTO audit_log SELECT 4, 'forged', event_body,"
        " occurred_at, received_at, actor_kind, actor_id, action, subject_kind, subject_id, purpose, outcome,"
        " origin_service, request_id, leaf_hash, chain_hash FROM audit_log WHERE seq = 3",
        4,
        "",
    ),
}


@pytest.mark.parametrize("tampering", list(TAMPERING))
def test_tampering_is_found_and_the_record_named(dsn: str, tampering: str) -> None:
    _append(dsn, [_delivery(action=f"action.{n}") for n in range(5)])
    sql, bad_seq, problem = TAMPERING[tampering]
    with psycopg.connect(dsn) as conn:
        for statement in sql.split(";"):
            conn.execute(statement.encode())
    ok, first_bad, found = _verify(dsn)
    assert not ok
    assert first_bad == bad_seq
    assert problem in found


def test_verify_command_exits_non_zero_and_names_the_record(dsn: str) -> None:
    _append(dsn, [_delivery(action=f"action.{n}") for n in range(3)])
    env = {"TEND_AUDIT_DATABASE_URL": dsn, "PATH": ""}
    ok = subprocess.run(
        [sys.executable, "-m", "tend_audit", "verify"], env=env, capture_output=True, text=True, check=False
    )
    assert ok.returncode == 0, ok.stderr
    assert "3 records" in ok.stdout
    with psycopg.connect(dsn) as conn:
        conn.execute("UPDATE audit_log SET purpose = 'changed' WHERE seq = 2")
    failed = subprocess.run(
        [sys.executable, "-m", "tend_audit", "verify"], env=env, capture_output=True, text=True, check=False
    )
    assert failed.returncode == 1
    assert "record 2" in failed.stderr
