"""Services authenticate each other: each may call only the methods its role needs. Checkin, which must never learn
who a student is, is refused pseudonym resolution by identity, and the refusal is on the audit trail."""

from __future__ import annotations

import time

import grpc
import psycopg
import pytest
from tend.identity.v1 import identity_pb2, identity_pb2_grpc

from tend_common.service_auth import channel_to
from tend_testing.running_suite import RunningSuite

pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("service-auth")]


def _identity_as(running_suite: RunningSuite, service: str) -> identity_pb2_grpc.IdentityServiceStub:
    config = running_suite.config
    target = f"127.0.0.1:{config.ports.identity_grpc}"
    return identity_pb2_grpc.IdentityServiceStub(channel_to(target, "identity", service, config.service_keys[service]))


def _refusals(dsn: str, caller: str) -> list[tuple[object, ...]]:
    with psycopg.connect(dsn) as conn:
        return conn.execute(
            "SELECT subject_id, outcome FROM audit_log WHERE actor_kind = 'service' AND actor_id = %s"
            " AND action = 'service_call'",
            (caller,),
        ).fetchall()


def test_checkin_is_refused_pseudonym_resolution_and_the_refusal_is_audited(running_suite: RunningSuite) -> None:
    request = identity_pb2.ResolvePseudonymsRequest(pseudonyms=["p_anything"])
    with pytest.raises(grpc.RpcError) as refused:
        _identity_as(running_suite, "checkin").ResolvePseudonyms(request, timeout=10)
    assert refused.value.code() == grpc.StatusCode.PERMISSION_DENIED
    deadline = time.monotonic() + 20
    rows = _refusals(running_suite.database("audit"), "checkin")
    while not rows and time.monotonic() < deadline:
        time.sleep(0.2)
        rows = _refusals(running_suite.database("audit"), "checkin")
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
