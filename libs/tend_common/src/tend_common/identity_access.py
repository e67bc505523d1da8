"""The client side of identity's decisions: who is acting (a signed person assertion) and may they (CheckAccess).

Like `identity_keys`, this is only identity's public contract seen from a caller. Which action, resource and purpose
to ask about, and what a service does with the answer, stay in each service.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

import grpc
from tend.identity.v1 import identity_pb2, identity_pb2_grpc

from tend_common.identity_keys import identity_key_fetcher
from tend_common.tokens import InvalidToken, TokenVerifier

# Identity's person assertions name the person's kind in this claim; the other tokens it signs (students' check-in
# tokens) do not. Telling them apart keeps a pseudonym from ever being taken for an actor.
PERSON_KIND_CLAIM = "kind"


def assertion_verifier(identity_channel: grpc.Channel, audience: str) -> TokenVerifier:
    """Verifies what identity signs for `audience` (the calling service), with identity's public keys."""
    return TokenVerifier(identity_key_fetcher(identity_channel), audience=audience)


@dataclass(frozen=True)
class Actor:
    """The person a verified assertion speaks for."""

    person_id: str
    kind: str  # "staff" or "student", as identity says


def actor_of(claims: Mapping[str, Any]) -> Actor | None:
    """The person of verified claims, or None when the claims are not a person assertion."""
    subject = claims.get("sub")
    kind = claims.get(PERSON_KIND_CLAIM)
    if isinstance(kind, str) and isinstance(subject, str) and subject:
        return Actor(subject, kind)
    return None


class ActorRefused(Exception):
    """The assertion names no one this service can trust now; `code` and `details` are what the caller is told."""

    def __init__(self, code: grpc.StatusCode, details: str) -> None:
        super().__init__(details)
        self.code = code
        self.details = details


def verify_actor(verifier: TokenVerifier, assertion: str) -> Actor:
    """The person acting, from their assertion; raises ActorRefused (UNAUTHENTICATED, or UNAVAILABLE when identity's
    keys cannot be fetched: not the caller's fault, and worth retrying)."""
    try:
        claims = verifier.verify(assertion)
    except InvalidToken:
        raise ActorRefused(grpc.StatusCode.UNAUTHENTICATED, "the actor assertion is not valid") from None
    except grpc.RpcError:
        raise ActorRefused(grpc.StatusCode.UNAVAILABLE, "identity is unavailable; try again") from None
    actor = actor_of(claims)
    if actor is None:
        raise ActorRefused(grpc.StatusCode.UNAUTHENTICATED, "the actor assertion is not valid")
    return actor


@dataclass(frozen=True)
class AccessDecision:
    allowed: bool
    # Plain language, safe to show to the person who asked.
    reason: str
    # Which of identity's rules decided, for logs and audit records.
    rule: str = ""


class AccessChecker(Protocol):
    """Asks whether the person in `assertion` may do `action` on a resource; raises grpc.RpcError when it cannot
    get an answer (the caller then refuses)."""

    def check(
        self, assertion: str, action: str, resource_kind: str, resource_id: str, purpose: str
    ) -> AccessDecision: ...


class IdentityAccessChecker:
    """The AccessChecker backed by identity's CheckAccess."""

    def __init__(self, identity_channel: grpc.Channel, timeout_seconds: float = 5.0) -> None:
        self._stub = identity_pb2_grpc.IdentityServiceStub(identity_channel)
        self._timeout = timeout_seconds

    def check(self, assertion: str, action: str, resource_kind: str, resource_id: str, purpose: str) -> AccessDecision:
        response = self._stub.CheckAccess(
            identity_pb2.CheckAccessRequest(
                actor_assertion=assertion,
                action=action,
                resource=identity_pb2.Resource(kind=resource_kind, id=resource_id),
                purpose=purpose,
            ),
            timeout=self._timeout,
        )
        return AccessDecision(allowed=response.allowed, reason=response.reason, rule=response.rule)
