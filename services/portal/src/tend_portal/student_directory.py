"""Identity's answers about students for the case and engagement pages: display names of pseudonyms, for the person
asking (ResolvePseudonyms, audited by identity), and a student's own pseudonym (ListVisibleStudents, where the
policy's "self" relationship shows a student themself and nobody else).

Kept apart from clients.py so these pages add files rather than change shared ones.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

import grpc
from tend.identity.v1 import identity_pb2, identity_pb2_grpc

from tend_portal.grpc_calls import call

# Identity resolves at most this many pseudonyms per call.
_RESOLVE_BATCH = 500


class StudentDirectory(Protocol):
    def display_names(self, actor_assertion: str, pseudonyms: Sequence[str]) -> dict[str, str]: ...
    def own_pseudonym(self, actor_assertion: str) -> str | None: ...


class IdentityStudentDirectory:
    """Identity's answers above, over the app's one channel to identity (see channels.py)."""

    def __init__(self, channel: grpc.Channel, timeout_seconds: float = 5.0) -> None:
        self._stub = identity_pb2_grpc.IdentityServiceStub(channel)
        self._timeout = timeout_seconds

    def display_names(self, actor_assertion: str, pseudonyms: Sequence[str]) -> dict[str, str]:
        """Pseudonym to display name, for the students identity lets the person see for engagement support; the
        others are absent."""
        wanted = list(dict.fromkeys(pseudonyms))
        names: dict[str, str] = {}
        for start in range(0, len(wanted), _RESOLVE_BATCH):
            request = identity_pb2.ResolvePseudonymsRequest(
                actor_assertion=actor_assertion,
                pseudonyms=wanted[start : start + _RESOLVE_BATCH],
                purpose=identity_pb2.PURPOSE_ENGAGEMENT_SUPPORT,
            )
            response = call("ResolvePseudonyms", self._stub.ResolvePseudonyms, request, self._timeout)
            names.update({student.pseudonym: student.display_name for student in response.students})
        return names

    def own_pseudonym(self, actor_assertion: str) -> str | None:
        """The signed-in student's pseudonym: identity shows a student exactly one student, themself; any other
        answer is not trusted to be them."""
        request = identity_pb2.ListVisibleStudentsRequest(
            actor_assertion=actor_assertion, purpose=identity_pb2.PURPOSE_ENGAGEMENT_SUPPORT
        )
        response = call("ListVisibleStudents", self._stub.ListVisibleStudents, request, self._timeout)
        if response.detail != identity_pb2.DETAIL_LEVEL_INDIVIDUAL or len(response.students) != 1:
            return None
        return str(response.students[0].pseudonym)
