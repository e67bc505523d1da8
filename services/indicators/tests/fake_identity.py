"""The fake identity for indicators' tests: tend_testing's, with MapToPseudonyms for ingest.

Pseudonyms are keyed digests of the identifier, as identity's are keyed, so a test can compute the one a student will
get. Unknown students are routed to `default_staff` (a personal tutor).
"""

from __future__ import annotations

import hashlib
import hmac

import grpc
from google.protobuf.message import Message
from tend.identity.v1 import identity_pb2

from tend_indicators.access import AUDIENCE
from tend_testing import fake_identity

_KEY = b"fake identity pseudonym key"


def pseudonym_for(identifier: str) -> str:
    return "p_" + hmac.new(_KEY, identifier.encode(), hashlib.sha256).hexdigest()[:20]


class FakeIdentity(fake_identity.FakeIdentity):
    def __init__(self) -> None:
        super().__init__(AUDIENCE)
        self.default_staff = [("tutor-0001", "personal_tutor")]
        # (identifier kind, identifier) -> pseudonym of the students the fake knows.
        self.students: dict[tuple[int, str], str] = {}
        # When set, every identifier of these kinds is a student (with pseudonym_for(identifier)).
        self.map_any_of: set[int] = set()

    def add_student(self, **identifiers: str) -> str:
        """Registers a student under identifiers by kind name (username=..., email=..., student_number=...,
        oulad_id=...); returns their pseudonym (from the first identifier)."""
        first = next(iter(identifiers.values()))
        pseudonym = pseudonym_for(first)
        for kind_name, identifier in identifiers.items():
            kind = identity_pb2.IdentifierKind.Value(f"IDENTIFIER_KIND_{kind_name.upper()}")
            self.students[(kind, identifier)] = pseudonym
        return pseudonym

    def methods(self) -> dict[str, fake_identity.Method]:
        return {**super().methods(), "MapToPseudonyms": self._map_to_pseudonyms}

    def _map_to_pseudonyms(
        self, request: identity_pb2.MapToPseudonymsRequest, _context: grpc.ServicerContext
    ) -> Message:
        found = {}
        for identifier in request.identifiers:
            pseudonym = self.students.get((request.kind, identifier))
            if pseudonym is None and request.kind in self.map_any_of:
                pseudonym = pseudonym_for(identifier)
            if pseudonym is not None:
                found[identifier] = pseudonym
        return identity_pb2.MapToPseudonymsResponse(pseudonyms=found)
