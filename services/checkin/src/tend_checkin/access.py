"""Staff authentication and authorisation, both decided by identity.

The signed assertion is verified locally with identity's public key (who is acting); identity's CheckAccess decides
whether that person may do the action on the module run (may they). Checkin keeps no rights of its own.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

import grpc
from tend.identity.v1 import identity_pb2, identity_pb2_grpc

from tend_common.identity_keys import identity_key_fetcher
from tend_common.tokens import TokenVerifier

AUDIENCE = "checkin"

# Identity signs both staff assertions and students' check-in tokens for this audience. Its assertions name the
# person's kind and its check-in tokens do not; telling them apart keeps a person id from ever being taken for a
# pseudonym (and a pseudonym from being taken for an actor).
_PERSON_KIND_CLAIM = "kind"


def is_person_assertion(claims: Mapping[str, Any]) -> bool:
    """Verified claims of an assertion of a signed-in person (subject: person id)."""
    return isinstance(claims.get(_PERSON_KIND_CLAIM), str) and _has_subject(claims)


def is_checkin_token(claims: Mapping[str, Any]) -> bool:
    """Verified claims of a student's check-in token (subject: pseudonym)."""
    return _PERSON_KIND_CLAIM not in claims and _has_subject(claims)


def _has_subject(claims: Mapping[str, Any]) -> bool:
    subject = claims.get("sub")
    return isinstance(subject, str) and bool(subject)


def checkin_token_verifier(identity_channel: grpc.Channel) -> TokenVerifier:
    """Verifies what identity signs for this service: staff assertions and students' check-in tokens."""
    return TokenVerifier(identity_key_fetcher(identity_channel), audience=AUDIENCE)


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
