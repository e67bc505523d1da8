"""A fake identity gRPC server for audit's tests: real gRPC, a real Ed25519 key, and an explicit list of grants.

It implements only what audit calls (GetPublicKeys, CheckAccess). Assertions are signed with PyJWT as identity signs
them (EdDSA compact JWS with a key id, the person's kind in a claim), so audit's verification runs for real.
"""

from __future__ import annotations

import time
import uuid
from typing import Any

import grpc
import jwt
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from tend.identity.v1 import identity_pb2

from tend_common.grpc_server import GrpcServer, start_grpc_server
from tend_common.tokens import ISSUER

SERVICE = "tend.identity.v1.IdentityService"
DENIED_REASON = "Only the data protection officer may read the audit log."


class FakeIdentity:
    key_id = "test-key-1"

    def __init__(self) -> None:
        self._key = Ed25519PrivateKey.generate()
        # (person id, action, resource kind, resource id) the fake allows; everything else is refused.
        self.grants: set[tuple[str, str, str, str]] = set()
        self.access_requests: list[identity_pb2.CheckAccessRequest] = []
        self.failing = False
        self._server: GrpcServer | None = None
        self.target: str | None = None

    def start(self) -> str:
        handler = grpc.method_handlers_generic_handler(
            SERVICE,
            {
                "GetPublicKeys": grpc.unary_unary_rpc_method_handler(
                    self._get_public_keys,
                    request_deserializer=identity_pb2.GetPublicKeysRequest.FromString,
                    response_serializer=identity_pb2.GetPublicKeysResponse.SerializeToString,
                ),
                "CheckAccess": grpc.unary_unary_rpc_method_handler(
                    self._check_access,
                    request_deserializer=identity_pb2.CheckAccessRequest.FromString,
                    response_serializer=identity_pb2.CheckAccessResponse.SerializeToString,
                ),
            },
        )
        self._server = start_grpc_server(lambda server: server.add_generic_rpc_handlers((handler,)), [SERVICE], 0)
        self.target = f"127.0.0.1:{self._server.port}"
        return self.target

    def stop(self) -> None:
        if self._server is not None:
            self._server.stop(grace_seconds=0)
            self._server = None

    def allow(self, person_id: str, action: str, resource_kind: str, resource_id: str) -> None:
        self.grants.add((person_id, action, resource_kind, resource_id))

    def assertion(
        self, person_id: str, kind: str | None = "staff", audience: str = "audit", key: Ed25519PrivateKey | None = None
    ) -> str:
        """A person assertion as GetSession issues them (without `kind`: a token that is not a person assertion)."""
        now = int(time.time())
        claims: dict[str, object] = {
            "iss": ISSUER,
            "aud": audience,
            "sub": person_id,
            "iat": now,
            "exp": now + 300,
            "jti": str(uuid.uuid4()),
        }
        if kind is not None:
            claims["kind"] = kind
        return jwt.encode(claims, key or self._key, algorithm="EdDSA", headers={"kid": self.key_id})

    def _get_public_keys(self, _request: identity_pb2.GetPublicKeysRequest, _context: Any) -> Any:
        raw = self._key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
        return identity_pb2.GetPublicKeysResponse(
            keys=[identity_pb2.PublicKey(key_id=self.key_id, algorithm="EdDSA", public_key=raw)]
        )

    def _check_access(self, request: identity_pb2.CheckAccessRequest, context: grpc.ServicerContext) -> Any:
        if self.failing:
            context.abort(grpc.StatusCode.UNAVAILABLE, "identity is down")
        self.access_requests.append(request)
        try:
            claims = jwt.decode(
                request.actor_assertion, self._key.public_key(), algorithms=["EdDSA"], audience="audit", issuer=ISSUER
            )
        except jwt.PyJWTError:
            return identity_pb2.CheckAccessResponse(allowed=False, reason="Sign in again.", rule="invalid_assertion")
        wanted = (claims["sub"], request.action, request.resource.kind, request.resource.id)
        if wanted in self.grants:
            return identity_pb2.CheckAccessResponse(allowed=True, reason="Allowed.", rule="test_grant")
        return identity_pb2.CheckAccessResponse(allowed=False, reason=DENIED_REASON, rule="default_deny")
