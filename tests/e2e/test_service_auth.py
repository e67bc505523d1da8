"""Services authenticate each other: each may call only the methods its role needs. Checkin, which must never learn
who a student is, is refused pseudonym resolution by identity, and the refusal is on the audit trail. A person's
assertion is accepted only from the service it was issued for (the portal's own calls to identity: "identity")."""

from __future__ import annotations

import time

import grpc
import psycopg
import pytest
from tend.identity.v1 import identity_pb2, identity_pb2_grpc

from tend_common.service_auth import channel_to
from tend_testing.flows import sign_in
from tend_testing.running_suite import RunningSuite

pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("service-auth")]


def _identity_as(running_suite: RunningSuite, service: str) -> identity_pb2_grpc.IdentityServiceStub:
    config = running_suite.config
    target = f"127.0.0.1:{config.ports.identity_grpc}"
    return identity_pb2_grpc.IdentityServiceStub(channel_to(target, "identity", service, config.service_keys[service]))


def _refusals(dsn: str, caller: str, purpose: str = "method not in the caller's role") -> list[tuple[object, ...]]:
    with psycopg.connect(dsn) as conn:
        return conn.execute(
            "SELECT subject_id, outcome FROM audit_log WHERE actor_kind = 'service' AND actor_id = %s"
            " AND action = 'service_call' AND purpose = %s",
            (caller, purpose),
        ).fetchall()


def _eventual_refusals(running_suite: RunningSuite, caller: str, purpose: str) -> list[tuple[object, ...]]:
    deadline = time.monotonic() + 20
    rows = _refusals(running_suite.database("audit"), caller, purpose)
    while not rows and time.monotonic() < deadline:
        time.sleep(0.2)
        rows = _refusals(running_suite.database("audit"), caller, purpose)
    return rows


def _assertions(running_suite: RunningSuite, username: str, *audiences: str) -> dict[str, str]:
    """Signs `username` in to the portal over HTTP and has identity issue their assertions for `audiences`, as the
    portal does on every page."""
    browser = sign_in(running_suite.config.portal_url, username)
    session = _identity_as(running_suite, "portal").GetSession(
        identity_pb2.GetSessionRequest(session_token=browser.cookies["tend_session"], audiences=list(audiences)),
        timeout=10,
    )
    return dict(session.assertions)


def _check_access(assertion: str) -> identity_pb2.CheckAccessRequest:
    return identity_pb2.CheckAccessRequest(
        actor_assertion=assertion,
        action="student.view",
        resource=identity_pb2.Resource(kind="student", id="p_aaaa"),
        data_purpose=identity_pb2.PURPOSE_ENGAGEMENT_SUPPORT,
    )


def test_checkin_is_refused_pseudonym_resolution_and_the_refusal_is_audited(running_suite: RunningSuite) -> None:
    request = identity_pb2.ResolvePseudonymsRequest(pseudonyms=["p_anything"])
    with pytest.raises(grpc.RpcError) as refused:
        _identity_as(running_suite, "checkin").ResolvePseudonyms(request, timeout=10)
    assert refused.value.code() == grpc.StatusCode.PERMISSION_DENIED
    rows = _eventual_refusals(running_suite, "checkin", "method not in the caller's role")
    assert rows == [("/tend.identity.v1.IdentityService/ResolvePseudonyms", "refused")]


def test_a_call_without_a_service_credential_is_unauthenticated(running_suite: RunningSuite) -> None:
    with grpc.insecure_channel(f"127.0.0.1:{running_suite.config.ports.identity_grpc}") as channel:
        stub = identity_pb2_grpc.IdentityServiceStub(channel)
        with pytest.raises(grpc.RpcError) as refused:
            stub.GetPublicKeys(identity_pb2.GetPublicKeysRequest(), timeout=10)
    assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED


def test_a_service_may_use_what_its_role_needs(running_suite: RunningSuite) -> None:
    keys = _identity_as(running_suite, "checkin").GetPublicKeys(identity_pb2.GetPublicKeysRequest(), timeout=10)
    assert keys.keys


def test_an_assertion_for_indicators_replayed_by_checkin_is_refused_and_audited(running_suite: RunningSuite) -> None:
    assertions = _assertions(running_suite, "tutor1", "indicators")

    with pytest.raises(grpc.RpcError) as refused:
        _identity_as(running_suite, "checkin").CheckAccess(_check_access(assertions["indicators"]), timeout=10)

    assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED
    assert refused.value.details() == (
        "the assertion was issued for indicators; checkin must present one issued for checkin"
    )
    rows = _eventual_refusals(running_suite, "checkin", "assertion issued for indicators, not checkin")
    assert rows == [("/tend.identity.v1.IdentityService/CheckAccess", "refused")]


def test_the_portal_may_not_present_an_assertion_issued_for_another_service(running_suite: RunningSuite) -> None:
    assertions = _assertions(running_suite, "schooladmin1", "indicators")

    with pytest.raises(grpc.RpcError) as refused:
        _identity_as(running_suite, "portal").ListModules(
            identity_pb2.ListModulesRequest(actor_assertion=assertions["indicators"]), timeout=10
        )

    assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED
    rows = _eventual_refusals(running_suite, "portal", "assertion issued for indicators, not identity")
    assert rows == [("/tend.identity.v1.IdentityService/ListModules", "refused")]


def test_each_service_may_present_the_assertions_issued_for_it(running_suite: RunningSuite) -> None:
    assertions = _assertions(running_suite, "tutor1", "checkin", "indicators", "notify", "audit", "identity")

    for service in ("checkin", "indicators", "notify", "audit"):
        decision = _identity_as(running_suite, service).CheckAccess(_check_access(assertions[service]), timeout=10)
        assert decision.rule, service  # answered: the assertion was accepted
    modules = _identity_as(running_suite, "portal").ListModules(
        identity_pb2.ListModulesRequest(actor_assertion=assertions["identity"]), timeout=10
    )
    assert modules is not None
