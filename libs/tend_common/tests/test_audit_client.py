"""The audit client against a real database: a change's record shares the change's transaction; a read's record is
committed before the read, and when it cannot be, the read fails and returns nothing."""

from __future__ import annotations

from collections.abc import Callable

import psycopg
import pytest
from tend.audit.v1 import events_pb2

from tend_common.audit_client import (
    ROUTING_KEY,
    Actor,
    AuditRecordFailed,
    Subject,
    audit_event,
    audited_read,
    record_in_outbox,
)
from tend_common.db import open_pool

STAFF = Actor.person("staff-1")
STUDENT = Subject("person", "student-1")


@pytest.fixture
def dsn(database_factory: Callable[[str | None], str]) -> str:
    return database_factory(None)


def _outbox(dsn: str) -> list[events_pb2.AuditEvent]:
    with psycopg.connect(dsn) as conn:
        rows = conn.execute("SELECT routing_key, body FROM outbox ORDER BY id").fetchall()
    assert all(routing_key == ROUTING_KEY for routing_key, _body in rows)
    return [events_pb2.AuditEvent.FromString(bytes(body)) for _key, body in rows]


def test_a_change_is_recorded_in_the_same_transaction(dsn: str) -> None:
    with psycopg.connect(dsn) as conn, conn.cursor() as cur:
        event_id = record_in_outbox(
            cur, STAFF, "module.update", Subject("module", "CS101"), "new title", "allowed", "identity", "req-1"
        )
    with psycopg.connect(dsn) as conn, conn.cursor() as cur:
        record_in_outbox(cur, STAFF, "module.delete", Subject("module", "CS102"), "", "allowed", "identity", "req-2")
        conn.rollback()  # the change did not happen, so neither did its record
    [event] = _outbox(dsn)
    assert event.meta.event_id == event_id
    assert (event.actor.kind, event.actor.id) == (events_pb2.ACTOR_KIND_PERSON, "staff-1")
    assert (event.action, event.subject.kind, event.subject.id) == ("module.update", "module", "CS101")
    assert (event.purpose, event.outcome, event.origin_service) == ("new title", events_pb2.OUTCOME_ALLOWED, "identity")
    assert (event.meta.request_id, event.meta.producer) == ("req-1", "identity")


def test_a_read_is_recorded_and_committed_before_the_data_is_read(dsn: str) -> None:
    pool = open_pool(dsn, max_size=2)
    seen_before_read: list[int] = []

    def read() -> dict[str, str]:
        seen_before_read.append(len(_outbox(dsn)))  # from another connection: only committed rows are visible
        return {"attendance": "92%"}

    try:
        data = audited_read(pool, STAFF, "student.view", STUDENT, "tutorial meeting", "portal", "req-3", read)
    finally:
        pool.close()
    assert data == {"attendance": "92%"}
    assert seen_before_read == [1]
    [event] = _outbox(dsn)
    assert (event.action, event.subject.id, event.outcome) == ("student.view", "student-1", events_pb2.OUTCOME_ALLOWED)


def _make_read_only(dsn: str) -> None:
    name = dsn.rsplit("/", 1)[1]
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(f'ALTER DATABASE "{name}" SET default_transaction_read_only = on'.encode())


def _break_outbox(dsn: str) -> None:
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(
            "CREATE FUNCTION refuse() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN"
            " RAISE EXCEPTION 'outbox unwritable'; END $$"
        )
        conn.execute("CREATE TRIGGER refuse BEFORE INSERT ON outbox FOR EACH ROW EXECUTE FUNCTION refuse()")


@pytest.mark.parametrize("breakage", [_make_read_only, _break_outbox], ids=["database read-only", "outbox refuses"])
def test_a_read_fails_and_returns_nothing_when_its_record_cannot_be_written(
    dsn: str, breakage: Callable[[str], None]
) -> None:
    breakage(dsn)
    pool = open_pool(dsn, max_size=2)
    reads: list[str] = []

    def read() -> str:
        reads.append("read")
        return "personal data"

    try:
        with pytest.raises(AuditRecordFailed, match=r"audit record of student\.view could not be committed"):
            audited_read(pool, STAFF, "student.view", STUDENT, "tutorial meeting", "portal", "req-4", read)
    finally:
        pool.close()
    assert reads == []
    with psycopg.connect(dsn) as conn:
        assert conn.execute("SELECT count(*) FROM outbox").fetchone() == (0,)


@pytest.mark.parametrize(
    ("actor", "action", "subject", "message"),
    [
        (Actor.person(""), "student.view", STUDENT, "missing actor.id"),
        (STAFF, "", STUDENT, "missing action"),
        (STAFF, "student.view", Subject("", "x"), "missing subject.kind"),
        (STAFF, "x" * 501, STUDENT, "longer than 500 characters: action"),
        (Actor("robot", "r2"), "student.view", STUDENT, "actor kind must be person or service"),  # type: ignore[arg-type]
    ],
)
def test_an_incomplete_record_is_refused_with_what_is_wrong(
    actor: Actor, action: str, subject: Subject, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        audit_event(actor, action, subject, "", "allowed", "portal")
