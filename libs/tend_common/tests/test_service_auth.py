"""Signed service credentials over a real gRPC server: who may call which method."""

from __future__ import annotations

from collections.abc import Iterator

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from tend_common.grpc_server import GrpcServer, start_grpc_server
from tend_common.service_auth import (
    MethodPolicy,
    ServiceAuthInterceptor,
    ServiceKeyError,
    ServiceTokenSigner,
    authenticated_channel,
    calling_service,
    generate_service_key,
    parse_trusted_services,
    public_key_text,
)

OPEN = "/test.Sessions/Open"
PRESENT = "/test.Sessions/Present"
PORTAL_KEY, INDICATORS_KEY, STRANGER_KEY = generate_service_key(), generate_service_key(), generate_service_key()


def _echo_caller(_request: bytes, _context: grpc.ServicerContext) -> bytes:
    return calling_service().encode()


@pytest.fixture(scope="module")
def server() -> Iterator[GrpcServer]:
    trusted = parse_trusted_services(
        [f"portal={public_key_text(PORTAL_KEY)}", f"indicators={public_key_text(INDICATORS_KEY)}"]
    )
    policy = MethodPolicy({PRESENT: frozenset({"portal", "indicators"}), OPEN: frozenset({"portal"})})
    interceptor = ServiceAuthInterceptor("checkin", trusted, policy)
    handlers = grpc.method_handlers_generic_handler(
        "test.Sessions",
        {
            "Open": grpc.unary_unary_rpc_method_handler(_echo_caller),
            "Present": grpc.unary_unary_rpc_method_handler(_echo_caller),
        },
    )
    server = start_grpc_server(
        lambda s: s.add_generic_rpc_handlers((handlers,)), ["test.Sessions"], port=0, interceptors=[interceptor]
    )
    yield server
    server.stop(0)


class _Stub:
    """Raw-bytes calls to the test service, so this plumbing test depends on no service's contract."""

    def __init__(self, channel: grpc.Channel) -> None:
        self.open = channel.unary_unary(OPEN)
        self.present = channel.unary_unary(PRESENT)


def _stub(server: GrpcServer, key: str, name: str, audience: str = "checkin") -> _Stub:
    return _Stub(authenticated_channel(f"127.0.0.1:{server.port}", ServiceTokenSigner(name, key), audience))


def _status(call: object) -> grpc.StatusCode:
    with pytest.raises(grpc.RpcError) as raised:
        call()  # type: ignore[operator]
    code: grpc.StatusCode = raised.value.code()
    return code


def test_a_permitted_service_is_served_and_its_name_is_known_to_the_handler(server: GrpcServer) -> None:
    assert _stub(server, INDICATORS_KEY, "indicators").present(b"") == b"indicators"


def test_a_trusted_service_is_refused_a_method_its_role_does_not_need(server: GrpcServer) -> None:
    stub = _stub(server, INDICATORS_KEY, "indicators")
    assert _status(lambda: stub.open(b"")) == grpc.StatusCode.PERMISSION_DENIED


@pytest.mark.parametrize(
    ("key", "name", "audience"),
    [
        (STRANGER_KEY, "portal", "checkin"),  # claims to be portal, signed with another key
        (STRANGER_KEY, "stranger", "checkin"),  # not a trusted service at all
        (PORTAL_KEY, "portal", "identity"),  # a credential meant for another service
    ],
    ids=["forged-portal", "untrusted-service", "meant-for-identity"],
)
def test_untrusted_or_misdirected_credentials_are_unauthenticated(
    server: GrpcServer, key: str, name: str, audience: str
) -> None:
    stub = _stub(server, key, name, audience)
    assert _status(lambda: stub.present(b"")) == grpc.StatusCode.UNAUTHENTICATED


def test_a_call_without_a_credential_is_unauthenticated_but_health_stays_open(server: GrpcServer) -> None:
    with grpc.insecure_channel(f"127.0.0.1:{server.port}") as channel:
        assert _status(lambda: _Stub(channel).present(b"")) == grpc.StatusCode.UNAUTHENTICATED
        health = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest())
        assert health.status == health_pb2.HealthCheckResponse.SERVING


def test_an_expired_credential_is_refused(server: GrpcServer) -> None:
    old = ServiceTokenSigner("portal", PORTAL_KEY, clock=lambda: 1_000_000.0)
    channel = grpc.insecure_channel(f"127.0.0.1:{server.port}")
    metadata = [("x-tend-service-token", old.token_for("checkin"))]
    assert _status(lambda: _Stub(channel).present(b"", metadata=metadata)) == grpc.StatusCode.UNAUTHENTICATED
    channel.close()


def test_during_a_rotation_both_keys_of_a_service_are_trusted() -> None:
    old_key, new_key = generate_service_key(), generate_service_key()
    trusted = parse_trusted_services([f"portal={public_key_text(old_key)}", f"portal={public_key_text(new_key)}"])
    policy = MethodPolicy({PRESENT: frozenset({"portal"})})
    server = start_grpc_server(
        lambda s: s.add_generic_rpc_handlers(
            (
                grpc.method_handlers_generic_handler(
                    "test.Sessions", {"Present": grpc.unary_unary_rpc_method_handler(_echo_caller)}
                ),
            )
        ),
        ["test.Sessions"],
        port=0,
        interceptors=[ServiceAuthInterceptor("checkin", trusted, policy)],
    )
    try:
        for key in (old_key, new_key):
            assert _stub(server, key, "portal").present(b"") == b"portal"
        stranger = _stub(server, STRANGER_KEY, "portal")
        assert _status(lambda: stranger.present(b"")) == grpc.StatusCode.UNAUTHENTICATED
    finally:
        server.stop(0)


def test_malformed_key_settings_are_named() -> None:
    with pytest.raises(ServiceKeyError, match="32 bytes"):
        ServiceTokenSigner("portal", "not base64!")
    with pytest.raises(ServiceKeyError, match="name=public-key"):
        parse_trusted_services(["portal"])
    with pytest.raises(ServiceKeyError, match="'portal' has a malformed public key"):
        parse_trusted_services(["portal=AAAA"])
