"""The client of identity's decisions, against a fake identity over real gRPC: who is acting, and may they."""

from __future__ import annotations

from collections.abc import Iterator

import grpc
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from tend_common.identity_access import (
    AccessDecision,
    Actor,
    ActorRefused,
    IdentityAccessChecker,
    actor_of,
    assertion_verifier,
    verify_actor,
)
from tend_common.tokens import TokenVerifier
from tend_testing.fake_identity import FakeIdentity

AUDIENCE = "checkin"
STAFF = "staff-1"
RUN = "run-1"


@pytest.fixture
def identity() -> Iterator[FakeIdentity]:
    with FakeIdentity(AUDIENCE, allowed_reason="You teach it.", denied_reason="You do not teach it.") as fake:
        yield fake


@pytest.fixture
def channel(identity: FakeIdentity) -> Iterator[grpc.Channel]:
    with grpc.insecure_channel(identity.target) as opened:
        yield opened


@pytest.fixture
def verifier(channel: grpc.Channel) -> TokenVerifier:
    return assertion_verifier(channel, AUDIENCE)


def test_check_asks_identity_about_the_resource_and_returns_its_decision(
    identity: FakeIdentity, channel: grpc.Channel
) -> None:
    identity.allow(STAFF, "session.open", "module_run", RUN)
    checker = IdentityAccessChecker(channel, timeout_seconds=2.0)
    assertion = identity.assertion(STAFF)

    allowed = checker.check(assertion, "session.open", "module_run", RUN, "teach")
    refused = checker.check(assertion, "session.open", "module_run", "run-2", "teach")

    assert allowed == AccessDecision(allowed=True, reason="You teach it.", rule="test_grant")
    assert refused == AccessDecision(allowed=False, reason="You do not teach it.", rule="default_deny")
    first = identity.access_requests[0]
    assert (first.actor_assertion, first.action, first.purpose) == (assertion, "session.open", "teach")
    assert (first.resource.kind, first.resource.id) == ("module_run", RUN)


def test_check_raises_when_identity_cannot_answer(identity: FakeIdentity, channel: grpc.Channel) -> None:
    identity.unavailable = True
    with pytest.raises(grpc.RpcError) as raised:
        IdentityAccessChecker(channel, timeout_seconds=2.0).check(identity.assertion(STAFF), "a", "b", "c", "d")
    assert raised.value.code() == grpc.StatusCode.UNAVAILABLE


def test_verify_actor_names_the_person_and_their_kind(identity: FakeIdentity, verifier: TokenVerifier) -> None:
    assert verify_actor(verifier, identity.assertion(STAFF)) == Actor(STAFF, "staff")
    assert verify_actor(verifier, identity.assertion("student-1", kind="student")) == Actor("student-1", "student")


def test_verify_actor_refuses_what_is_not_a_valid_person_assertion(
    identity: FakeIdentity, verifier: TokenVerifier
) -> None:
    bad = {
        "empty": "",
        "not a token": "not-a-token",
        "for another audience": identity.assertion(STAFF, audience="portal"),
        "expired": identity.assertion(STAFF, lifetime_seconds=60, issued_seconds_ago=600),
        "forged": identity.assertion(STAFF, key=Ed25519PrivateKey.generate()),
        "from another issuer": identity.assertion(STAFF, issuer="someone-else"),
        "a check-in token": identity.sign("psn_someone"),
    }
    for case, assertion in bad.items():
        with pytest.raises(ActorRefused) as refused:
            verify_actor(verifier, assertion)
        assert (refused.value.code, refused.value.details) == (
            grpc.StatusCode.UNAUTHENTICATED,
            "the actor assertion is not valid",
        ), case


def test_verify_actor_says_unavailable_when_identity_keys_cannot_be_fetched(
    identity: FakeIdentity, verifier: TokenVerifier
) -> None:
    identity.unavailable = True
    with pytest.raises(ActorRefused) as refused:
        verify_actor(verifier, identity.assertion(STAFF))
    assert refused.value.code == grpc.StatusCode.UNAVAILABLE


def test_actor_of_needs_a_subject_and_a_kind() -> None:
    assert actor_of({"sub": "p", "kind": "staff"}) == Actor("p", "staff")
    for claims in ({"sub": "p"}, {"sub": "", "kind": "staff"}, {"sub": "p", "kind": 1}, {"kind": "staff"}):
        assert actor_of(claims) is None, claims
