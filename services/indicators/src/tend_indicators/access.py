"""Who is asking, and which students they may see: both decided by identity.

The actor assertion is verified locally with identity's public keys (who is acting, for the audit record);
identity's ListVisibleStudents decides which students that person may see for a purpose, at which level of detail.
Indicators keeps no rights of its own.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Protocol

import grpc
from tend.identity.v1 import identity_pb2, identity_pb2_grpc

from tend_common import identity_access
from tend_common.tokens import TokenVerifier

AUDIENCE = "indicators"


class Detail(enum.Enum):
    NONE = identity_pb2.DETAIL_LEVEL_NONE
    AGGREGATE = identity_pb2.DETAIL_LEVEL_AGGREGATE
    INDIVIDUAL = identity_pb2.DETAIL_LEVEL_INDIVIDUAL


class Purpose(enum.Enum):
    ENGAGEMENT_SUPPORT = identity_pb2.PURPOSE_ENGAGEMENT_SUPPORT
    VISA_COMPLIANCE = identity_pb2.PURPOSE_VISA_COMPLIANCE
    COHORT_PATTERNS = identity_pb2.PURPOSE_COHORT_PATTERNS

    @property
    def words(self) -> str:
        return self.name.lower().replace("_", " ")


@dataclass(frozen=True)
class Visible:
    detail: Detail
    pseudonyms: frozenset[str]
    rule: str


class Visibility(Protocol):
    """Which students the person in `assertion` may see for `purpose`; raises grpc.RpcError when identity cannot
    answer (the caller then refuses)."""

    def visible(self, assertion: str, purpose: Purpose, module_run_id: str = "") -> Visible: ...


class IdentityVisibility:
    def __init__(self, channel: grpc.Channel, timeout_seconds: float = 5.0) -> None:
        self._stub = identity_pb2_grpc.IdentityServiceStub(channel)
        self._timeout = timeout_seconds

    def visible(self, assertion: str, purpose: Purpose, module_run_id: str = "") -> Visible:
        response = self._stub.ListVisibleStudents(
            identity_pb2.ListVisibleStudentsRequest(
                actor_assertion=assertion, purpose=purpose.value, module_run_id=module_run_id
            ),
            timeout=self._timeout,
        )
        detail = Detail(response.detail) if response.detail in {d.value for d in Detail} else Detail.NONE
        pseudonyms = frozenset(s.pseudonym for s in response.students) if detail is Detail.INDIVIDUAL else frozenset()
        return Visible(detail, pseudonyms, response.rule)


def assertion_verifier(channel: grpc.Channel) -> TokenVerifier:
    """Verifies the assertions identity signs for this service."""
    return identity_access.assertion_verifier(channel, AUDIENCE)
