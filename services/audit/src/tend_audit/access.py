"""Who is asking (their assertion, verified with identity's public key) and whether they may (identity decides).

Audit keeps no rights of its own: "who accessed person X" needs "audit.read" on that person, which identity grants the
data protection officer and the person themself; every other question needs "audit.read_all" on the whole log.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

import grpc
from tend.identity.v1 import identity_pb2, identity_pb2_grpc

from tend_common.identity_keys import identity_key_fetcher
from tend_common.tokens import TokenVerifier

AUDIENCE = "audit"
READ_PERSON = "audit.read"
READ_ALL = "audit.read_all"


def assertion_verifier(identity_channel: grpc.Channel) -> TokenVerifier:
    return TokenVerifier(identity_key_fetcher(identity_channel), audience=AUDIENCE)


def person_of(claims: Mapping[str, Any]) -> str | None:
    """The person id of a verified person assertion (identity marks those with the person's kind)."""
    subject = claims.get("sub")
    if isinstance(claims.get("kind"), str) and isinstance(subject, str) and subject:
        return subject
    return None


@dataclass(frozen=True)
class AccessDecision:
    allowed: bool
    # Plain language, safe to show to the person who asked.
    reason: str
    rule: str


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
