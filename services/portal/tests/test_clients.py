"""The gRPC clients over real gRPC to the fake servers: records returned, failures mapped to safe messages."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

import grpc
import pytest

from tend_portal.channels import ServiceChannels
from tend_portal.clients import IdentityClient
from tend_portal.grpc_calls import (
    InvalidArgument,
    NotFound,
    PermissionDenied,
    ServiceCallError,
    Unauthenticated,
    Unavailable,
)
from tend_portal.settings import Settings
from tend_testing.processes import free_port

if TYPE_CHECKING:
    from services.portal.tests.conftest import FakeIdentity, FakePerson


@pytest.fixture
def identity_client(settings: Settings) -> Iterator[IdentityClient]:
    channels = ServiceChannels(settings)
    yield IdentityClient(channels.identity, timeout_seconds=2.0)
    channels.close()


def test_sign_in_returns_the_person(identity_client: IdentityClient, staff: FakePerson) -> None:
    signed_in = identity_client.sign_in(staff.username, "correct horse battery staple")

    assert signed_in.session_token
    assert signed_in.person.person_id == staff.person_id
    assert signed_in.person.is_staff
    assert not signed_in.person.is_student
    assert signed_in.person.roles == ("lecturer", "personal_tutor")
    assert signed_in.expires_at is not None


@pytest.mark.parametrize(
    ("code", "error"),
    [
        (grpc.StatusCode.UNAUTHENTICATED, Unauthenticated),
        (grpc.StatusCode.NOT_FOUND, NotFound),
        (grpc.StatusCode.PERMISSION_DENIED, PermissionDenied),
        (grpc.StatusCode.INVALID_ARGUMENT, InvalidArgument),
        (grpc.StatusCode.UNAVAILABLE, Unavailable),
        (grpc.StatusCode.INTERNAL, ServiceCallError),
    ],
)
def test_failures_become_safe_messages_that_never_echo_the_remote_details(
    identity_client: IdentityClient, identity: FakeIdentity, code: grpc.StatusCode, error: type[ServiceCallError]
) -> None:
    identity.fail_with = code

    with pytest.raises(ServiceCallError) as raised:
        identity_client.get_session("any-token")

    assert type(raised.value) is error
    assert raised.value.code_name == code.name
    for text in (raised.value.message, str(raised.value)):
        assert "Canary" not in text
        assert "canary" not in text


def test_every_call_has_a_deadline(identity_client: IdentityClient, identity: FakeIdentity) -> None:
    identity.delay_seconds = 3.0

    with pytest.raises(Unavailable):
        identity_client.sign_out("any-token")


def test_an_unreachable_service_is_unavailable() -> None:
    channel = grpc.insecure_channel(f"127.0.0.1:{free_port()}")
    client = IdentityClient(channel, timeout_seconds=0.5)

    with pytest.raises(Unavailable):
        client.get_session("any-token")
    with pytest.raises(grpc.RpcError):
        client.check_health()
    channel.close()
