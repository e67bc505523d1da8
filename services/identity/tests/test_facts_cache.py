"""The cache of organisation facts behind CheckAccess: it answers repeated questions without the database, and a
change committed by anyone (another process, as the importer is) takes effect for the next decisions."""

from __future__ import annotations

import functools
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta

import psycopg
import pytest
from prometheus_client import REGISTRY
from psycopg_pool import ConnectionPool
from tend.identity.v1 import identity_pb2, identity_pb2_grpc

from tend_identity import demo, policy, sessions
from tend_identity.facts import CachedFacts
from tend_identity.facts_cache import FactsCache
from tend_identity.model import Actor, PersonKind

Stub = identity_pb2_grpc.IdentityServiceStub
ES = identity_pb2.PURPOSE_ENGAGEMENT_SUPPORT


def _until(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "not reached in time"
        time.sleep(0.02)


def _hits() -> float:
    return REGISTRY.get_sample_value("tend_identity_facts_cache_total", {"result": "hit"}) or 0.0


@pytest.fixture
def cache(identity_dsn: str) -> Iterator[FactsCache]:
    cache = FactsCache(identity_dsn).start()
    assert cache.listening
    yield cache
    cache.stop()


def test_a_value_is_read_once_then_served_from_memory(cache: FactsCache) -> None:
    loads: list[int] = []

    def load() -> int:
        loads.append(1)
        return 42

    assert [cache.get("key", load) for _ in range(3)] == [42, 42, 42]
    assert len(loads) == 1


def test_a_value_read_while_the_facts_changed_is_not_kept(cache: FactsCache) -> None:
    def load_during_a_change() -> str:
        cache.invalidate()  # as the listener would on a notification arriving mid-read
        return "maybe stale"

    cache.get("key", load_during_a_change)
    assert cache.get("key", lambda: "fresh") == "fresh"


def test_a_value_the_caller_does_not_keep_is_read_again(cache: FactsCache) -> None:
    assert cache.get("key", lambda: None, keep=lambda value: value is not None) is None
    assert cache.get("key", lambda: "now known", keep=lambda value: value is not None) == "now known"


def test_a_change_from_another_connection_drops_the_cache(cache: FactsCache, identity_dsn: str) -> None:
    cache.get("key", lambda: "before")
    with psycopg.connect(identity_dsn) as conn:
        conn.execute("INSERT INTO faculties (id, code, name) VALUES (gen_random_uuid(), 'NEW', 'New faculty')")
    _until(lambda: cache.get("key", lambda: "after") == "after")


def test_a_rolled_back_change_keeps_the_cache(cache: FactsCache, identity_dsn: str) -> None:
    cache.get("key", lambda: "kept")
    with psycopg.connect(identity_dsn) as conn:
        conn.execute("INSERT INTO faculties (id, code, name) VALUES (gen_random_uuid(), 'NEW', 'New faculty')")
        conn.rollback()
    time.sleep(0.2)
    assert cache.get("key", lambda: "read again") == "kept"


def test_nothing_is_cached_while_not_listening_and_listening_resumes(cache: FactsCache, identity_dsn: str) -> None:
    with psycopg.connect(identity_dsn, autocommit=True) as admin:
        admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
            " WHERE datname = current_database() AND query = 'LISTEN tend_identity_facts'"
        )
    _until(lambda: not cache.listening)
    assert cache.get("key", lambda: "first") == "first"
    assert cache.get("key", lambda: "second") == "second"
    _until(lambda: cache.listening)
    cache.get("key", lambda: "third")
    assert cache.get("key", lambda: "fourth") == "third"


def test_a_cache_that_cannot_listen_reads_every_time() -> None:
    cache = FactsCache("postgresql://nobody@127.0.0.1:1/none").start(wait_seconds=10)
    try:
        assert not cache.listening
        assert [cache.get("key", functools.partial(int, n)) for n in range(3)] == [0, 1, 2]
    finally:
        cache.stop()


# Through the real gRPC interface.


def _assertion(stub: Stub, pool: ConnectionPool, username: str) -> str:
    with pool.connection() as conn:
        token = sessions.open_session(conn, demo.demo_id("person", username), datetime.now(UTC) + timedelta(hours=1))
    response = stub.GetSession(identity_pb2.GetSessionRequest(session_token=token, audiences=["portal"]))
    return str(response.assertions["portal"])


def test_a_relationship_removed_elsewhere_stops_granting(
    stub: Stub, demo_pool: ConnectionPool, identity_dsn: str
) -> None:
    tutor_id = demo.demo_id("person", "tutor1")
    with demo_pool.connection() as conn:
        row = conn.execute(
            "SELECT student_id FROM relationships WHERE person_id = %s AND relation = 'personal_tutor_of' LIMIT 1",
            (tutor_id,),
        ).fetchone()
    assert row is not None
    request = identity_pb2.CheckAccessRequest(
        actor_assertion=_assertion(stub, demo_pool, "tutor1"),
        action="student.view",
        resource=identity_pb2.Resource(kind="student", id=str(row[0])),
        data_purpose=ES,
    )
    assert stub.CheckAccess(request).allowed
    hits = _hits()
    assert stub.CheckAccess(request).allowed
    assert _hits() > hits  # answered from the cache

    # As an import in another process would: the tutor no longer tutors (nor teaches) anyone.
    with psycopg.connect(identity_dsn) as conn:
        conn.execute("DELETE FROM relationships WHERE person_id = %s", (tutor_id,))

    _until(lambda: not stub.CheckAccess(request).allowed, timeout=5.0)


@pytest.fixture
def demo_cache(demo_pool: ConnectionPool, identity_dsn: str) -> Iterator[FactsCache]:
    """A cache listening only once the demo university is loaded, so no notification of the load is still to come."""
    cache = FactsCache(identity_dsn).start()
    assert cache.listening
    yield cache
    cache.stop()


def test_a_cached_break_glass_grant_ends_when_it_expires(demo_cache: FactsCache, demo_pool: ConnectionPool) -> None:
    cache = demo_cache
    tutor = Actor(demo.demo_id("person", "tutor1"), PersonKind.STAFF)
    student = demo.demo_id("person", "student001")
    granted = datetime.now(UTC)
    cache.get("sentinel", lambda: "before the grant")
    with demo_pool.connection() as conn:
        conn.execute(
            "INSERT INTO break_glass_grants (id, person_id, student_id, reason, granted_at, expires_at)"
            " VALUES (gen_random_uuid(), %s, %s, 'a written reason', %s, %s)",
            (tutor.person_id, student, granted, granted + timedelta(hours=1)),
        )
    _until(lambda: cache.get("sentinel", lambda: "after") == "after")  # the grant's notification has arrived
    only_break_glass = frozenset({policy.BREAK_GLASS})

    def held(at: datetime) -> frozenset[str]:
        return CachedFacts(cache, demo_pool, at).relationships_to(tutor, "student", student, only_break_glass)

    assert held(granted + timedelta(minutes=1)) == only_break_glass
    hits = _hits()
    assert held(granted + timedelta(minutes=59)) == only_break_glass
    assert held(granted + timedelta(minutes=61)) == frozenset()
    assert _hits() == hits + 2  # both from the cached grants, without a change in between
