"""A fake identity gRPC server for a service's tests: real gRPC, a real Ed25519 key, and explicit tables of answers.

Tokens are signed with PyJWT as identity signs them (EdDSA compact JWS with a key id; person assertions name the
person's kind, check-in tokens do not), so the service's own verification runs for real. It answers GetPublicKeys,
CheckAccess (from `allow`ed grants), ListVisibleStudents (from `show_students`) and ListResponsibleStaff; a service's
tests add the other methods they need in a subclass (`methods`). Every call is recorded before it is answered.

With `caller` set, the fake checks the calling service's signed credential as identity does (the caller signs with
`service_key`), so the service's service authentication runs for real too.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable
from types import TracebackType
from typing import Any, NoReturn, Self, TypedDict, Unpack

import grpc
import jwt
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from google.protobuf.message import Message
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

# A method of the fake: (request, context) -> response.
Method = Callable[[Any, grpc.ServicerContext], Message]


class TokenOptions(TypedDict, total=False):
    """How a token differs from the one identity would issue now: for another audience (default: the service under
    test), issued earlier, living shorter or longer (default 600 s), signed with another key or by another issuer."""

    audience: str
    lifetime_seconds: int
    issued_seconds_ago: int
    key: Ed25519PrivateKey
    issuer: str


def abort(context: grpc.ServicerContext, code: grpc.StatusCode, details: str) -> NoReturn:
    context.abort(code, details)
    raise AssertionError("context.abort returned")  # it raises; this tells the type checker so


class FakeIdentity:
    key_id = "test-key-1"

    def __init__(
        self,
        audience: str,
        *,
        allowed_reason: str = "Allowed.",
        denied_reason: str = "Not allowed.",
        caller: str | None = None,
    ) -> None:
        """`audience`: the service under test, for which assertions are signed and checked. The reasons are what
        CheckAccess gives for a grant and for a refusal. `caller`: the service name whose credential is required."""
        self.audience = audience
        self.allowed_reason = allowed_reason
        self.denied_reason = denied_reason
        self.caller = caller
        self.service_key = generate_service_key() if caller else ""
        self._key = Ed25519PrivateKey.generate()
        # (person id, action, resource kind, resource id) CheckAccess allows; everything else is refused.
        self.grants: set[tuple[str, str, str, str]] = set()
        # (person id, purpose) -> (detail level, pseudonyms) ListVisibleStudents answers; others see nothing.
        self.visible: dict[tuple[str, int], tuple[int, list[str]]] = {}
        # pseudonym -> [(person id, relationship)]; other students get `default_staff`, or NOT_FOUND without one.
        self.responsible: dict[str, list[tuple[str, str]]] = {}
        self.default_staff: list[tuple[str, str]] | None = None
        # (method name, request) of every call, in order.
        self.calls: list[tuple[str, Message]] = []
        # When True, every method answers UNAVAILABLE (after recording the call).
        self.unavailable = False
        self._lock = threading.Lock()
        self._server: GrpcServer | None = None
        self.target = ""

    # --- test controls ---

    def start(self) -> str:
        methods = self.methods()
        handler = grpc.method_handlers_generic_handler(
            SERVICE,
            {
                name: grpc.unary_unary_rpc_method_handler(
                    self._recorded(name, method),
                    request_deserializer=getattr(identity_pb2, f"{name}Request").FromString,
                    response_serializer=getattr(identity_pb2, f"{name}Response").SerializeToString,
                )
                for name, method in methods.items()
            },
        )
        interceptors = []
        if self.caller:
            trusted = parse_trusted_services([f"{self.caller}={public_key_text(self.service_key)}"])
            policy = MethodPolicy({f"/{SERVICE}/{name}": frozenset({self.caller}) for name in methods})
            interceptors.append(ServiceAuthInterceptor("identity", trusted, policy))
        self._server = start_grpc_server(
            lambda server: server.add_generic_rpc_handlers((handler,)), [SERVICE], 0, interceptors=interceptors
        )
        self.target = f"127.0.0.1:{self._server.port}"
        return self.target

    def stop(self) -> None:
        if self._server is not None:
            self._server.stop(grace_seconds=0)
            self._server = None

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self, _type: type[BaseException] | None, _value: BaseException | None, _traceback: TracebackType | None
    ) -> None:
        self.stop()

    def allow(self, person_id: str, action: str, resource_kind: str, resource_id: str) -> None:
        """CheckAccess allows the person `action` on the resource (for any purpose)."""
        self.grants.add((person_id, action, resource_kind, resource_id))

    def show_students(self, person_id: str, purpose: int, pseudonyms: list[str], detail: int | None = None) -> None:
        """ListVisibleStudents lets the person see these students for `purpose` (individually unless `detail`)."""
        self.visible[(person_id, purpose)] = (detail or identity_pb2.DETAIL_LEVEL_INDIVIDUAL, pseudonyms)

    def sign(self, subject: str, kind: str | None = None, **options: Unpack[TokenOptions]) -> str:
        """A token as identity signs them: with `kind` a person assertion (subject a person id), without it a
        check-in token (subject a pseudonym). `key` signs with another key, as a forger would."""
        now = int(time.time()) - options.get("issued_seconds_ago", 0)
        claims: dict[str, object] = {
            "iss": options.get("issuer", ISSUER),
            "aud": options.get("audience", self.audience),
            "sub": subject,
            "iat": now,
            "exp": now + options.get("lifetime_seconds", 600),
            "jti": str(uuid.uuid4()),
        }
        if kind is not None:
            claims["kind"] = kind
        key = options.get("key", self._key)
        return jwt.encode(claims, key, algorithm="EdDSA", headers={"kid": self.key_id})

    def assertion(self, person_id: str, kind: str | None = "staff", **options: Unpack[TokenOptions]) -> str:
        """A person assertion as GetSession issues them (with `kind=None`: a token that is not a person assertion)."""
        return self.sign(person_id, kind, **options)

    def requests(self, method: str) -> list[Any]:
        """The requests of every call of `method`, in order."""
        with self._lock:
            return [request for name, request in self.calls if name == method]

    @property
    def access_requests(self) -> list[identity_pb2.CheckAccessRequest]:
        return self.requests("CheckAccess")

    # --- the gRPC methods ---

    def methods(self) -> dict[str, Method]:
        """The methods served, by name; a subclass adds its own to these."""
        return {
            "GetPublicKeys": self._get_public_keys,
            "CheckAccess": self._check_access,
            "ListVisibleStudents": self._list_visible_students,
            "ListResponsibleStaff": self._list_responsible_staff,
        }

    def _recorded(self, name: str, method: Method) -> Method:
        def answer(request: Any, context: grpc.ServicerContext) -> Message:
            with self._lock:
                self.calls.append((name, request))
            if self.unavailable:
                abort(context, grpc.StatusCode.UNAVAILABLE, "identity is down for the test")
            return method(request, context)

        return answer

    def _person_of(self, assertion: str) -> str | None:
        """The subject of a valid assertion for the audience, as identity's own verification would give it."""
        try:
            claims = jwt.decode(
                assertion, self._key.public_key(), algorithms=["EdDSA"], audience=self.audience, issuer=ISSUER
            )
        except jwt.PyJWTError:
            return None
        return str(claims["sub"])

    def _get_public_keys(self, _request: Any, _context: grpc.ServicerContext) -> Message:
        raw = self._key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
        return identity_pb2.GetPublicKeysResponse(
            keys=[identity_pb2.PublicKey(key_id=self.key_id, algorithm="EdDSA", public_key=raw)]
        )

    def _check_access(self, request: identity_pb2.CheckAccessRequest, _context: grpc.ServicerContext) -> Message:
        person = self._person_of(request.actor_assertion)
        if person is None:
            return identity_pb2.CheckAccessResponse(allowed=False, reason="Sign in again.", rule="invalid_assertion")
        if (person, request.action, request.resource.kind, request.resource.id) in self.grants:
            return identity_pb2.CheckAccessResponse(allowed=True, reason=self.allowed_reason, rule="test_grant")
        return identity_pb2.CheckAccessResponse(allowed=False, reason=self.denied_reason, rule="default_deny")

    def _list_visible_students(
        self, request: identity_pb2.ListVisibleStudentsRequest, context: grpc.ServicerContext
    ) -> Message:
        person = self._person_of(request.actor_assertion)
        if person is None:
            abort(context, grpc.StatusCode.UNAUTHENTICATED, "a valid assertion is required")
        detail, pseudonyms = self.visible.get((person, request.purpose), (identity_pb2.DETAIL_LEVEL_NONE, []))
        individual = detail == identity_pb2.DETAIL_LEVEL_INDIVIDUAL
        return identity_pb2.ListVisibleStudentsResponse(
            detail=detail,  # type: ignore[arg-type]
            students=[identity_pb2.VisibleStudent(pseudonym=p) for p in pseudonyms] if individual else [],
            rule="test",
        )

    def _list_responsible_staff(
        self, request: identity_pb2.ListResponsibleStaffRequest, context: grpc.ServicerContext
    ) -> Message:
        staff = self.responsible.get(request.pseudonym, self.default_staff)
        if staff is None:
            abort(context, grpc.StatusCode.NOT_FOUND, "no such student")
        return identity_pb2.ListResponsibleStaffResponse(
            staff=[identity_pb2.ResponsibleStaff(person_id=p, relationship=r) for p, r in staff]
        )
