"""Group commit of the audit records of access decisions, against the real database: concurrent decisions share a
commit and are each recorded exactly once, and a decision whose record cannot be committed is not answered."""

from __future__ import annotations

import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

import grpc
import psycopg
import pytest
from psycopg_pool import ConnectionPool
from tend.audit.v1 import events_pb2
from tend.identity.v1 import identity_pb2, identity_pb2_grpc

from tend_common.grpc_server import start_grpc_server
from tend_common.messaging.envelope import OutgoingEvent
from tend_identity import demo, sessions
from tend_identity.audit_writer import AuditNotRecorded, AuditWriter
from tend_identity.grpc_service import SERVICE_NAME, IdentityServicer, register
from tend_identity.settings import Settings
from tend_identity.signing import Keyring

Stub = identity_pb2_grpc.IdentityServiceStub
CS101 = str(demo.demo_id("module_run", "CS101"))


def assertion_of(stub: Stub, pool: ConnectionPool, username: str) -> str:
    with pool.connection() as conn:
        token = sessions.open_session(conn, demo.demo_id("person", username), datetime.now(UTC) + timedelta(hours=1))
    response = stub.GetSession(identity_pb2.GetSessionRequest(session_token=token, audiences=["portal"]))
    return str(response.assertions["portal"])


def _event(marker: str) -> OutgoingEvent:
    return OutgoingEvent("audit.recorded.v1", marker, "tend.audit.v1.AuditEvent", 1, marker.encode())


def _outbox_ids(dsn: str) -> list[str]:
    with psycopg.connect(dsn) as conn:
        return [row[0] for row in conn.execute("SELECT event_id FROM outbox ORDER BY id")]


def _until(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "not reached in time"
        time.sleep(0.01)


@pytest.fixture
def writer(identity_dsn: str) -> Iterator[AuditWriter]:
    writer = AuditWriter(identity_dsn, wait_seconds=10.0).start()
    yield writer
    writer.stop()


def test_records_waiting_together_are_committed_together_each_once(writer: AuditWriter, identity_dsn: str) -> None:
    with psycopg.connect(identity_dsn) as blocker:
        # Holds the writer's first batch at the table lock, so the next records provably queue behind it.
        blocker.execute("LOCK TABLE outbox IN ACCESS EXCLUSIVE MODE")
        with ThreadPoolExecutor(max_workers=21) as callers:
            first = callers.submit(writer.record, _event("first"))
            _until(lambda: writer.queued == 0)
            rest = [callers.submit(writer.record, _event(f"rest-{n}")) for n in range(20)]
            _until(lambda: writer.queued == 20)
            assert not first.done()
            blocker.commit()
            for future in [first, *rest]:
                future.result(timeout=10)

    assert writer.batches_committed == 2
    assert sorted(_outbox_ids(identity_dsn)) == sorted(["first", *(f"rest-{n}" for n in range(20))])


def test_a_record_is_committed_before_record_returns(writer: AuditWriter, identity_dsn: str) -> None:
    for n in range(5):
        writer.record(_event(f"one-{n}"))
        assert _outbox_ids(identity_dsn)[-1] == f"one-{n}"


def test_a_batch_that_cannot_be_committed_fails_every_record_in_it(writer: AuditWriter, identity_dsn: str) -> None:
    with psycopg.connect(identity_dsn, autocommit=True) as admin:
        admin.execute("ALTER TABLE outbox RENAME TO outbox_away")
        try:
            with pytest.raises(AuditNotRecorded):
                writer.record(_event("lost"))
        finally:
            admin.execute("ALTER TABLE outbox_away RENAME TO outbox")

    writer.record(_event("after"))  # the writer reconnects and goes on
    assert _outbox_ids(identity_dsn) == ["after"]


def test_a_record_not_committed_in_time_fails(identity_dsn: str) -> None:
    writer = AuditWriter(identity_dsn, wait_seconds=0.3).start()
    try:
        with psycopg.connect(identity_dsn) as blocker:
            blocker.execute("LOCK TABLE outbox IN ACCESS EXCLUSIVE MODE")
            started = time.monotonic()
            with pytest.raises(AuditNotRecorded):
                writer.record(_event("late"))
            assert time.monotonic() - started < 5
    finally:
        writer.stop()


def test_a_stopped_writer_commits_what_it_holds_and_refuses_more(identity_dsn: str) -> None:
    writer = AuditWriter(identity_dsn).start()
    writer.record(_event("kept"))
    writer.stop()

    with pytest.raises(AuditNotRecorded):
        writer.record(_event("too-late"))
    assert _outbox_ids(identity_dsn) == ["kept"]


# Through the real gRPC interface.


def test_concurrent_decisions_are_each_audited_exactly_once(stub: Stub, demo_pool: ConnectionPool) -> None:
    lecturer = assertion_of(stub, demo_pool, "lecturer1")
    pvc = assertion_of(stub, demo_pool, "pvc1")
    request_ids = [f"req-{n}" for n in range(60)]

    def decide(request_id: str) -> bool:
        response = stub.CheckAccess(
            identity_pb2.CheckAccessRequest(
                actor_assertion=lecturer if int(request_id[4:]) % 2 else pvc,
                action="teaching_session.open",
                resource=identity_pb2.Resource(kind="module_run", id=CS101),
            ),
            metadata=[("x-request-id", request_id)],
            timeout=20,
        )
        return bool(response.allowed)

    with ThreadPoolExecutor(max_workers=16) as callers:
        answers = dict(zip(request_ids, callers.map(decide, request_ids), strict=True))

    with demo_pool.connection() as conn:
        bodies = [bytes(row[0]) for row in conn.execute("SELECT body FROM outbox")]
    events = [events_pb2.AuditEvent.FromString(body) for body in bodies]
    recorded = Counter(event.meta.request_id for event in events if event.action == "teaching_session.open")
    assert recorded == Counter(request_ids)
    for event in events:
        allowed = event.outcome == events_pb2.OUTCOME_ALLOWED
        assert allowed == answers[event.meta.request_id]
    assert sum(answers.values()) == 30


def test_a_decision_whose_audit_record_fails_is_not_answered(stub: Stub, demo_pool: ConnectionPool) -> None:
    request = identity_pb2.CheckAccessRequest(
        actor_assertion=assertion_of(stub, demo_pool, "lecturer1"),
        action="teaching_session.open",
        resource=identity_pb2.Resource(kind="module_run", id=CS101),
    )
    assert stub.CheckAccess(request).allowed

    with demo_pool.connection() as conn:
        conn.execute("ALTER TABLE outbox RENAME TO outbox_away")
    try:
        with pytest.raises(grpc.RpcError) as failed:
            stub.CheckAccess(request, timeout=20)
    finally:
        with demo_pool.connection() as conn:
            conn.execute("ALTER TABLE outbox_away RENAME TO outbox")

    assert failed.value.code() == grpc.StatusCode.UNAVAILABLE
    assert "recorded" in (failed.value.details() or "")
    assert stub.CheckAccess(request).allowed


def test_a_decision_whose_audit_record_is_late_is_not_answered(
    demo_pool: ConnectionPool, keyring: Keyring, identity_dsn: str
) -> None:
    settings = Settings(database_url=identity_dsn, grpc_port=0, metrics_port=0, audit_wait_seconds=0.5)
    servicer = IdentityServicer(demo_pool, keyring, settings)
    server = start_grpc_server(register(servicer), [SERVICE_NAME], port=0, max_workers=4)
    try:
        with grpc.insecure_channel(f"127.0.0.1:{server.port}") as channel:
            stub = identity_pb2_grpc.IdentityServiceStub(channel)
            request = identity_pb2.CheckAccessRequest(
                actor_assertion=assertion_of(stub, demo_pool, "lecturer1"),
                action="teaching_session.open",
                resource=identity_pb2.Resource(kind="module_run", id=CS101),
            )
            with psycopg.connect(identity_dsn) as blocker:
                blocker.execute("LOCK TABLE outbox IN ACCESS EXCLUSIVE MODE")
                with pytest.raises(grpc.RpcError) as failed:
                    stub.CheckAccess(request, timeout=20)
            assert failed.value.code() == grpc.StatusCode.UNAVAILABLE
    finally:
        server.stop(grace_seconds=1.0)
        servicer.close()


def test_the_relay_is_woken_for_committed_records(identity_dsn: str) -> None:
    writer = AuditWriter(identity_dsn, relay_wake_seconds=0.05).start()
    woken = threading.Event()
    with psycopg.connect(identity_dsn, autocommit=True) as listener:
        listener.execute("LISTEN tend_outbox")
        try:
            writer.record(_event(str(uuid.uuid4())))
            for _ in listener.notifies(timeout=5.0, stop_after=1):
                woken.set()
        finally:
            writer.stop()
    assert woken.is_set()
