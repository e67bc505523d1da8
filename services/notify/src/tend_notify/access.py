"""Who is acting, and may they: both decided by identity.

The signed assertion is verified here with identity's public keys (who is acting); identity's CheckAccess decides
whether that person may write to the student (may they). Notify keeps no rights of its own.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import grpc
from tend.identity.v1 import identity_pb2, identity_pb2_grpc

from tend_common.identity_keys import identity_key_fetcher
from tend_common.tokens import TokenVerifier

AUDIENCE = "notify"
SEND_ACTION = "enquiry.send"
STUDENT = "student"


def assertion_verifier(identity_channel: grpc.Channel) -> TokenVerifier:
    """Verifies the assertions identity signs for this service."""
    return TokenVerifier(identity_key_fetcher(identity_channel), audience=AUDIENCE)


@dataclass(frozen=True)
class AccessDecision:
    allowed: bool
    # Plain language, safe to show to the person who asked.
    reason: str


class AccessChecker(Protocol):
    """Asks whether the person in `assertion` may do `action` on a resource; raises grpc.RpcError when it cannot get
    an answer (the caller then refuses)."""

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
        return AccessDecision(allowed=response.allowed, reason=response.reason)
