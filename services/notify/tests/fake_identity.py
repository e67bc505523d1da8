"""A fake identity gRPC server for notify's tests: real gRPC, a real Ed25519 key, an explicit list of grants and a
small directory of people.

It implements what notify calls (GetPublicKeys, CheckAccess, GetContactDetails, ListResponsibleStaff) and, like
identity, checks the calling service's signed credential, so notify's service authentication runs for real.
Assertions are signed exactly as identity signs them (EdDSA compact JWS with a key id and the person's kind).
"""

from __future__ import annotations

import threading
import time
import uuid
from dataclasses import dataclass
from typing import Any

import grpc
import jwt
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from tend.identity.v1 import identity_pb2

from tend_common.grpc_server import GrpcServer, start_grpc_server
from tend_common.service_auth import (
    MethodPolicy,
    ServiceAuthInterceptor,
    generate_service_key,
    parse_trusted_services,
    public_key_text,
)
from tend_common.tokens import ISSUER

SERVICE = "tend.identity.v1.IdentityService"
DENIED_REASON = "You are not responsible for this student."
_METHODS = ("GetPublicKeys", "CheckAccess", "GetContactDetails", "ListResponsibleStaff")


@dataclass(frozen=True)
class Person:
    preferred_name: str
    email: str


class FakeIdentity:
    key_id = "test-key-1"

    def __init__(self) -> None:
        self._key = Ed25519PrivateKey.generate()
        # The key notify signs its calls with; tests give it to notify as TEND_NOTIFY_SERVICE_KEY.
        self.notify_service_key = generate_service_key()
        # (person id, action, resource kind, resource id) the fake allows; everything else is refused.
        self.grants: set[tuple[str, str, str, str]] = set()
        self.students: dict[str, Person] = {}  # pseudonym -> person
        self.staff: dict[str, Person] = {}  # person id -> person
        self.responsible: dict[str, list[tuple[str, str]]] = {}  # pseudonym -> (person id, relationship)
        self.contact_requests: list[identity_pb2.GetContactDetailsRequest] = []
        self.unavailable = False  # when True, GetContactDetails answers UNAVAILABLE
        self._lock = threading.Lock()
        self._server: GrpcServer | None = None
        self.target = ""

    # --- test controls ---

    def start(self) -> str:
        handlers = {
            name: grpc.unary_unary_rpc_method_handler(
                getattr(self, f"_{name}"),
                request_deserializer=getattr(identity_pb2, f"{name}Request").FromString,
                response_serializer=getattr(identity_pb2, f"{name}Response").SerializeToString,
            )
            for name in _METHODS
        }
        handler = grpc.method_handlers_generic_handler(SERVICE, handlers)
        trusted = parse_trusted_services([f"notify={public_key_text(self.notify_service_key)}"])
        policy = MethodPolicy({f"/{SERVICE}/{name}": frozenset({"notify"}) for name in _METHODS})
        self._server = start_grpc_server(
            lambda server: server.add_generic_rpc_handlers((handler,)),
            [SERVICE],
            0,
            interceptors=[ServiceAuthInterceptor("identity", trusted, policy)],
        )
        self.target = f"127.0.0.1:{self._server.port}"
        return self.target

    def stop(self) -> None:
        if self._server is not None:
            self._server.stop(grace_seconds=0)
            self._server = None

    def add_student(self, preferred_name: str, email: str) -> str:
        pseudonym = f"p_{uuid.uuid4().hex[:16]}"
        self.students[pseudonym] = Person(preferred_name, email)
        return pseudonym

    def add_staff(self, preferred_name: str, email: str) -> str:
        person_id = str(uuid.uuid4())
        self.staff[person_id] = Person(preferred_name, email)
        return person_id

    def allow_enquiry(self, person_id: str, pseudonym: str) -> None:
        self.grants.add((person_id, "enquiry.send", "student", pseudonym))

    def assertion(self, person_id: str, kind: str = "staff", audience: str = "notify", lifetime: int = 600) -> str:
        now = int(time.time())
        claims = {"iss": ISSUER, "aud": audience, "sub": person_id, "iat": now, "exp": now + lifetime, "kind": kind}
        return jwt.encode(claims, self._key, algorithm="EdDSA", headers={"kid": self.key_id})

    # --- the gRPC methods ---

    def _GetPublicKeys(self, _request: identity_pb2.GetPublicKeysRequest, _context: Any) -> Any:
        raw = self._key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
        return identity_pb2.GetPublicKeysResponse(
            keys=[identity_pb2.PublicKey(key_id=self.key_id, algorithm="EdDSA", public_key=raw)]
        )

    def _CheckAccess(self, request: identity_pb2.CheckAccessRequest, _context: Any) -> Any:
        try:
            claims = jwt.decode(
                request.actor_assertion, self._key.public_key(), algorithms=["EdDSA"], audience="notify", issuer=ISSUER
            )
        except jwt.PyJWTError:
            return identity_pb2.CheckAccessResponse(allowed=False, reason="Sign in again.", rule="invalid_assertion")
        wanted = (claims["sub"], request.action, request.resource.kind, request.resource.id)
        if wanted in self.grants:
            return identity_pb2.CheckAccessResponse(allowed=True, reason="You are their tutor.", rule="test_grant")
        return identity_pb2.CheckAccessResponse(allowed=False, reason=DENIED_REASON, rule="default_deny")

    def _GetContactDetails(self, request: identity_pb2.GetContactDetailsRequest, context: grpc.ServicerContext) -> Any:
        with self._lock:
            self.contact_requests.append(request)
        if self.unavailable:
            context.abort(grpc.StatusCode.UNAVAILABLE, "identity is down for the test")
        person = self.students.get(request.pseudonym) if request.pseudonym else self.staff.get(request.person_id)
        if person is None:
            context.abort(grpc.StatusCode.NOT_FOUND, "no such person")
            raise AssertionError("context.abort returned")  # it raises; this tells the type checker so
        return identity_pb2.GetContactDetailsResponse(preferred_name=person.preferred_name, email=person.email)

    def _ListResponsibleStaff(
        self, request: identity_pb2.ListResponsibleStaffRequest, context: grpc.ServicerContext
    ) -> Any:
        staff = self.responsible.get(request.pseudonym)
        if staff is None:
            context.abort(grpc.StatusCode.NOT_FOUND, "no such student")
            raise AssertionError("context.abort returned")
        return identity_pb2.ListResponsibleStaffResponse(
            staff=[identity_pb2.ResponsibleStaff(person_id=p, relationship=r) for p, r in staff]
        )
