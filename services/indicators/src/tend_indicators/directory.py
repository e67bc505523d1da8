"""What indicators asks identity: pseudonyms for a source's identifiers (at the door, so no identifier is kept), and
the staff responsible for a student (to route a case).

`Directory` is the interface; `IdentityDirectory` asks identity over gRPC. Tests use a fake identity gRPC server; the
OULAD evaluation uses a keyed stand-in (bench/indicators_identity.py).
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Protocol

import grpc
from tend.identity.v1 import identity_pb2, identity_pb2_grpc

# Identifiers per MapToPseudonyms call: large files are mapped in batches of this many.
MAP_BATCH = 2000
_NOT_A_STUDENT = (grpc.StatusCode.NOT_FOUND, grpc.StatusCode.INVALID_ARGUMENT)


class IdentifierKind(enum.Enum):
    """How a source names a student (identity.proto IdentifierKind)."""

    STUDENT_NUMBER = identity_pb2.IDENTIFIER_KIND_STUDENT_NUMBER
    EMAIL = identity_pb2.IDENTIFIER_KIND_EMAIL
    USERNAME = identity_pb2.IDENTIFIER_KIND_USERNAME
    OULAD_ID = identity_pb2.IDENTIFIER_KIND_OULAD_ID

    @classmethod
    def from_name(cls, name: str) -> IdentifierKind:
        try:
            return cls[name.strip().upper()]
        except KeyError:
            allowed = ", ".join(kind.name.lower() for kind in cls)
            raise ValueError(f"unknown identifier kind (use one of: {allowed})") from None


@dataclass(frozen=True)
class ResponsibleStaff:
    person_id: str
    relationship: str


class DirectoryUnavailable(Exception):
    """Identity did not answer; the caller retries later (nothing was stored)."""


class Directory(Protocol):
    def map_to_pseudonyms(self, kind: IdentifierKind, identifiers: Sequence[str]) -> dict[str, str]:
        """Identifier -> pseudonym for the identifiers that name known students; unknown ones are absent."""
        ...

    def responsible_staff(self, pseudonyms: Sequence[str]) -> dict[str, list[ResponsibleStaff]]:
        """Per pseudonym, the staff responsible (personal tutor first)."""
        ...


class IdentityDirectory:
    """The Directory backed by identity's gRPC API."""

    def __init__(self, channel: grpc.Channel, timeout_seconds: float = 10.0, parallel_calls: int = 8) -> None:
        self._stub = identity_pb2_grpc.IdentityServiceStub(channel)
        self._timeout = timeout_seconds
        self._parallel = parallel_calls

    def map_to_pseudonyms(self, kind: IdentifierKind, identifiers: Sequence[str]) -> dict[str, str]:
        unique = list(dict.fromkeys(identifiers))
        found: dict[str, str] = {}
        try:
            for start in range(0, len(unique), MAP_BATCH):
                response = self._stub.MapToPseudonyms(
                    identity_pb2.MapToPseudonymsRequest(kind=kind.value, identifiers=unique[start : start + MAP_BATCH]),
                    timeout=self._timeout,
                )
                found.update(response.pseudonyms)
        except grpc.RpcError as exc:
            raise DirectoryUnavailable(f"identity did not map identifiers: {exc.code().name}") from exc
        return found

    def responsible_staff(self, pseudonyms: Sequence[str]) -> dict[str, list[ResponsibleStaff]]:
        def ask(pseudonym: str) -> list[ResponsibleStaff]:
            try:
                response = self._stub.ListResponsibleStaff(
                    identity_pb2.ListResponsibleStaffRequest(pseudonym=pseudonym), timeout=self._timeout
                )
            except grpc.RpcError as exc:
                # A pseudonym identity does not know (any more) has no one responsible; anything else is an outage.
                if exc.code() in _NOT_A_STUDENT:
                    return []
                raise
            return [ResponsibleStaff(s.person_id, s.relationship) for s in response.staff]

        try:
            with ThreadPoolExecutor(max_workers=self._parallel) as pool:
                answers = list(pool.map(ask, pseudonyms))
        except grpc.RpcError as exc:
            raise DirectoryUnavailable(f"identity did not name responsible staff: {exc.code().name}") from exc
        return dict(zip(pseudonyms, answers, strict=True))
