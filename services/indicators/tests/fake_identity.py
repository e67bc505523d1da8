"""A fake identity gRPC server for indicators' tests: real gRPC, a real Ed25519 key, explicit tables.

It implements exactly what indicators calls: MapToPseudonyms (ingest), ListResponsibleStaff (routing cases),
ListVisibleStudents (authorising queries) and GetPublicKeys (verifying assertions). Pseudonyms are keyed digests of
the identifier, as identity's are keyed, so a test can compute the one a student will get.
"""

from __future__ import annotations

import hashlib
import hmac
import time
import uuid
from collections import defaultdict
from typing import Any

import grpc
import jwt
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from tend.identity.v1 import identity_pb2

from tend_common.grpc_server import GrpcServer, start_grpc_server
from tend_common.tokens import ISSUER

SERVICE = "tend.identity.v1.IdentityService"
_KEY = b"fake identity pseudonym key"


def pseudonym_for(identifier: str) -> str:
    return "p_" + hmac.new(_KEY, identifier.encode(), hashlib.sha256).hexdigest()[:20]


class FakeIdentity:
    key_id = "test-key-1"

    def __init__(self) -> None:
        self._key = Ed25519PrivateKey.generate()
        # (identifier kind, identifier) -> pseudonym of the students the fake knows.
        self.students: dict[tuple[int, str], str] = {}
        # When set, every identifier of these kinds is a student (with pseudonym_for(identifier)).
        self.map_any_of: set[int] = set()
        # pseudonym -> [(person id, relationship)]; unknown students get `default_staff`.
        self.responsible: dict[str, list[tuple[str, str]]] = {}
        self.default_staff: list[tuple[str, str]] = [("tutor-0001", "personal_tutor")]
        # (person id, purpose) -> (detail level, pseudonyms)
        self.visible: dict[tuple[str, int], tuple[int, list[str]]] = {}
        self.calls: defaultdict[str, int] = defaultdict(int)
        self.unavailable = False
        self._server: GrpcServer | None = None
        self.target: str | None = None

    # --- test controls ---

    def start(self) -> str:
        methods: dict[str, tuple[Any, Any]] = {
            "GetPublicKeys": (self._get_public_keys, identity_pb2.GetPublicKeysRequest),
            "MapToPseudonyms": (self._map, identity_pb2.MapToPseudonymsRequest),
            "ListResponsibleStaff": (self._responsible, identity_pb2.ListResponsibleStaffRequest),
            "ListVisibleStudents": (self._visible, identity_pb2.ListVisibleStudentsRequest),
        }
        handler = grpc.method_handlers_generic_handler(
            SERVICE,
            {
                name: grpc.unary_unary_rpc_method_handler(
                    method, request_deserializer=request.FromString, response_serializer=lambda m: m.SerializeToString()
                )
                for name, (method, request) in methods.items()
            },
        )
        self._server = start_grpc_server(lambda server: server.add_generic_rpc_handlers((handler,)), [SERVICE], 0)
        self.target = f"127.0.0.1:{self._server.port}"
        return self.target

    def stop(self) -> None:
        if self._server is not None:
            self._server.stop(grace_seconds=0)
            self._server = None

    def add_student(self, **identifiers: str) -> str:
        """Registers a student under identifiers by kind name (username=..., email=..., student_number=...,
        oulad_id=...); returns their pseudonym (from the first identifier)."""
        first = next(iter(identifiers.values()))
        pseudonym = pseudonym_for(first)
        for kind_name, identifier in identifiers.items():
            kind = identity_pb2.IdentifierKind.Value(f"IDENTIFIER_KIND_{kind_name.upper()}")
            self.students[(kind, identifier)] = pseudonym
        return pseudonym

    def allow(self, person_id: str, purpose: int, pseudonyms: list[str], detail: int | None = None) -> None:
        self.visible[(person_id, purpose)] = (detail or identity_pb2.DETAIL_LEVEL_INDIVIDUAL, pseudonyms)

    def assertion(self, person_id: str, kind: str = "staff", audience: str = "indicators") -> str:
        now = int(time.time())
        claims = {
            "iss": ISSUER,
            "aud": audience,
            "sub": person_id,
            "iat": now,
            "exp": now + 600,
            "jti": str(uuid.uuid4()),
            "kind": kind,
        }
        return jwt.encode(claims, self._key, algorithm="EdDSA", headers={"kid": self.key_id})

    # --- the gRPC methods ---

    def _check(self, name: str, context: Any) -> None:
        self.calls[name] += 1
        if self.unavailable:
            context.abort(grpc.StatusCode.UNAVAILABLE, "identity is down (test)")

    def _get_public_keys(self, _request: Any, context: Any) -> identity_pb2.GetPublicKeysResponse:
        self._check("GetPublicKeys", context)
        raw = self._key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
        return identity_pb2.GetPublicKeysResponse(
            keys=[identity_pb2.PublicKey(key_id=self.key_id, algorithm="EdDSA", public_key=raw)]
        )

    def _map(self, request: identity_pb2.MapToPseudonymsRequest, context: Any) -> Any:
        self._check("MapToPseudonyms", context)
        found = {}
        for identifier in request.identifiers:
            pseudonym = self.students.get((request.kind, identifier))
            if pseudonym is None and request.kind in self.map_any_of:
                pseudonym = pseudonym_for(identifier)
            if pseudonym is not None:
                found[identifier] = pseudonym
        return identity_pb2.MapToPseudonymsResponse(pseudonyms=found)

    def _responsible(self, request: identity_pb2.ListResponsibleStaffRequest, context: Any) -> Any:
        self._check("ListResponsibleStaff", context)
        staff = self.responsible.get(request.pseudonym, self.default_staff)
        return identity_pb2.ListResponsibleStaffResponse(
            staff=[identity_pb2.ResponsibleStaff(person_id=p, relationship=r) for p, r in staff]
        )

    def _visible(self, request: identity_pb2.ListVisibleStudentsRequest, context: Any) -> Any:
        self._check("ListVisibleStudents", context)
        try:
            claims = jwt.decode(
                request.actor_assertion, self._key.public_key(), algorithms=["EdDSA"], options={"verify_aud": False}
            )
        except jwt.PyJWTError:
            context.abort(grpc.StatusCode.UNAUTHENTICATED, "a valid assertion is required")
        detail, pseudonyms = self.visible.get(
            (str(claims["sub"]), request.purpose), (identity_pb2.DETAIL_LEVEL_NONE, [])
        )
        students = [identity_pb2.VisibleStudent(pseudonym=p) for p in pseudonyms]
        if detail != identity_pb2.DETAIL_LEVEL_INDIVIDUAL:
            students = []
        return identity_pb2.ListVisibleStudentsResponse(
            detail=detail,  # type: ignore[arg-type]
            students=students,
            rule="test",
        )
