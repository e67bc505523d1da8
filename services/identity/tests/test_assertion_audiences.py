"""A person's assertion is accepted only from the service it was issued for: the servicer behind a real gRPC server
with the service-authentication interceptor in front, as in production. Indicators may present only "indicators"
assertions, checkin only "checkin"; the portal, calling identity for the person at the browser, only "identity". A
replay is UNAUTHENTICATED and goes on the audit trail as a refused service call."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import grpc
import pytest
from psycopg_pool import ConnectionPool
from tend.audit.v1 import events_pb2
from tend.identity.v1 import identity_pb2, identity_pb2_grpc

from tend_common.grpc_server import start_grpc_server
from tend_common.service_auth import channel_to, generate_service_key, public_key_text, server_interceptors
from tend_identity import demo, sessions
from tend_identity.assertions import AssertionForAnotherService, expected_audience, issue_assertion, verify_assertion
from tend_identity.callers import METHOD_POLICY
from tend_identity.grpc_service import SERVICE_NAME, IdentityServicer, register
from tend_identity.signing import Keyring
from tend_identity.store import people as people_store

Stub = identity_pb2_grpc.IdentityServiceStub
SERVICES = ("portal", "checkin", "indicators", "notify", "audit")
CHECK_ACCESS = f"/{SERVICE_NAME}/CheckAccess"


@pytest.fixture
def stubs(servicer: IdentityServicer) -> Iterator[dict[str, Stub]]:
    """A stub per calling service, each carrying that service's credential, to a server that verifies them."""
    keys = {service: generate_service_key() for service in SERVICES}
    trusted = [f"{service}={public_key_text(key)}" for service, key in keys.items()]
    server = start_grpc_server(
        register(servicer),
        [SERVICE_NAME],
        port=0,
        max_workers=4,
        interceptors=server_interceptors("identity", trusted, METHOD_POLICY),
    )
    channels = [channel_to(f"127.0.0.1:{server.port}", "identity", service, keys[service]) for service in SERVICES]
    yield {service: Stub(channel) for service, channel in zip(SERVICES, channels, strict=True)}
    for channel in channels:
        channel.close()
    server.stop(grace_seconds=1.0)


def _assertions(stubs: dict[str, Stub], pool: ConnectionPool, username: str) -> dict[str, str]:
    with pool.connection() as conn:
        token = sessions.open_session(conn, demo.demo_id("person", username), datetime.now(UTC) + timedelta(hours=1))
    audiences = ["identity", *SERVICES]
    response = stubs["portal"].GetSession(identity_pb2.GetSessionRequest(session_token=token, audiences=audiences))
    return dict(response.assertions)


def _check(assertion: str) -> identity_pb2.CheckAccessRequest:
    return identity_pb2.CheckAccessRequest(
        actor_assertion=assertion,
        action="student.view",
        resource=identity_pb2.Resource(kind="student", id=str(demo.demo_id("person", "student001"))),
        data_purpose=identity_pb2.PURPOSE_ENGAGEMENT_SUPPORT,
    )


def _service_refusals(pool: ConnectionPool) -> list[tuple[str, str, str, int]]:
    with pool.connection() as conn:
        rows = conn.execute("SELECT body FROM outbox ORDER BY id").fetchall()
    events = [events_pb2.AuditEvent.FromString(bytes(row[0])) for row in rows]
    return [
        (e.actor.id, e.subject.id, e.purpose, e.outcome)
        for e in events
        if e.actor.kind == events_pb2.ACTOR_KIND_SERVICE and e.action == "service_call"
    ]


def test_each_service_may_present_the_assertions_issued_for_it(
    stubs: dict[str, Stub], demo_pool: ConnectionPool
) -> None:
    assertions = _assertions(stubs, demo_pool, "tutor1")

    for service in ("checkin", "indicators", "notify", "audit"):
        assert stubs[service].CheckAccess(_check(assertions[service])).allowed, service
    assert stubs["portal"].CheckAccess(_check(assertions["identity"])).allowed
    assert _service_refusals(demo_pool) == []


def test_an_indicators_assertion_replayed_by_checkin_is_unauthenticated_and_audited(
    stubs: dict[str, Stub], demo_pool: ConnectionPool
) -> None:
    assertions = _assertions(stubs, demo_pool, "tutor1")

    with pytest.raises(grpc.RpcError) as raised:
        stubs["checkin"].CheckAccess(_check(assertions["indicators"]))

    assert raised.value.code() == grpc.StatusCode.UNAUTHENTICATED
    assert raised.value.details() == (
        "the assertion was issued for indicators; checkin must present one issued for checkin"
    )
    assert _service_refusals(demo_pool) == [
        ("checkin", CHECK_ACCESS, "assertion issued for indicators, not checkin", events_pb2.OUTCOME_REFUSED)
    ]


def test_a_verified_assertion_is_still_refused_from_another_service(
    stubs: dict[str, Stub], demo_pool: ConnectionPool
) -> None:
    """The servicer keeps verified assertions in memory; the audience is checked on every call all the same."""
    assertions = _assertions(stubs, demo_pool, "tutor1")
    assert stubs["indicators"].CheckAccess(_check(assertions["indicators"])).allowed

    with pytest.raises(grpc.RpcError) as raised:
        stubs["notify"].CheckAccess(_check(assertions["indicators"]))

    assert raised.value.code() == grpc.StatusCode.UNAUTHENTICATED


@pytest.mark.parametrize("audience", ["portal", "indicators", "checkin"])
def test_the_portal_presents_only_assertions_issued_for_identity(
    stubs: dict[str, Stub], demo_pool: ConnectionPool, audience: str
) -> None:
    assertions = _assertions(stubs, demo_pool, "schooladmin1")

    with pytest.raises(grpc.RpcError) as raised:
        stubs["portal"].ListModules(identity_pb2.ListModulesRequest(actor_assertion=assertions[audience]))

    assert raised.value.code() == grpc.StatusCode.UNAUTHENTICATED
    assert _service_refusals(demo_pool) == [
        (
            "portal",
            f"/{SERVICE_NAME}/ListModules",
            f"assertion issued for {audience}, not identity",
            events_pb2.OUTCOME_REFUSED,
        )
    ]


def test_the_expected_audience_is_the_callers_name_or_identity_for_the_portal() -> None:
    assert expected_audience("checkin") == "checkin"
    assert expected_audience("indicators") == "indicators"
    assert expected_audience("portal") == "identity"
    assert expected_audience("") is None  # service authentication off: no caller to bind to


def test_verify_assertion_checks_the_audience(keyring: Keyring, demo_pool: ConnectionPool) -> None:
    with demo_pool.connection() as conn:
        person = people_store.person(conn, demo.demo_id("person", "tutor1"))
    assert person is not None
    token = issue_assertion(keyring, person, "indicators", timedelta(minutes=5), datetime.now(UTC))

    assert verify_assertion(keyring, token, "indicators").person_id == person.id
    assert verify_assertion(keyring, token, None).person_id == person.id
    with pytest.raises(AssertionForAnotherService):
        verify_assertion(keyring, token, "checkin")
