"""Service-to-service authentication with signed service credentials.

Every service holds an Ed25519 key of its own. A calling service attaches a short-lived token it signed (issuer: its
name, audience: the service it calls) to each gRPC call; the called service verifies it against the public keys of
the services it trusts and lets the caller use only the methods its role needs. This is what stops, for instance,
checkin from ever resolving a pseudonym, whatever a person it acts for may see.

Tokens are re-signed every half lifetime and verified tokens are cached until they expire, so the cost per call is a
dictionary look-up, not a signature check.
"""

from __future__ import annotations

import base64
import contextvars
import logging
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import grpc
import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

log = logging.getLogger(__name__)

METADATA_KEY = "x-tend-service-token"
TOKEN_LIFETIME_SECONDS = 120
# Methods every caller may use without a credential: probes and tooling.
OPEN_METHOD_PREFIXES = (
    "/grpc.health.v1.Health/",
    "/grpc.reflection.v1alpha.ServerReflection/",
    "/grpc.reflection.v1.ServerReflection/",
)

_calling_service: contextvars.ContextVar[str] = contextvars.ContextVar("calling_service", default="")


class ServiceKeyError(ValueError):
    """A service key or trusted-key setting is malformed."""


def generate_service_key() -> str:
    """A new private key, as the base64 text the `service_key` setting takes."""
    raw = Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption()
    )
    return base64.b64encode(raw).decode()


def _private_key(text: str) -> Ed25519PrivateKey:
    try:
        return Ed25519PrivateKey.from_private_bytes(base64.b64decode(text, validate=True))
    except ValueError as exc:
        raise ServiceKeyError("service key must be 32 bytes of base64 (an Ed25519 private key)") from exc


def public_key_text(private_key_text: str) -> str:
    """The base64 public key that other services list in their trusted services."""
    public = _private_key(private_key_text).public_key()
    return base64.b64encode(public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)).decode()


def parse_trusted_services(entries: Iterable[str]) -> dict[str, list[Ed25519PublicKey]]:
    """Reads `name=base64-public-key` entries, as the `trusted_services` setting lists them. A name may appear more
    than once, so that during a key rotation both the old and the new key of a service are trusted."""
    trusted: dict[str, list[Ed25519PublicKey]] = {}
    for entry in entries:
        name, separator, key = entry.partition("=")
        if not separator or not name.strip():
            raise ServiceKeyError(f"trusted service entry {entry!r} is not name=public-key")
        try:
            public = Ed25519PublicKey.from_public_bytes(base64.b64decode(key.strip(), validate=True))
        except ValueError as exc:
            raise ServiceKeyError(f"trusted service {name.strip()!r} has a malformed public key") from exc
        trusted.setdefault(name.strip(), []).append(public)
    return trusted


def calling_service() -> str:
    """The authenticated name of the service that made the current call (empty for open methods)."""
    return _calling_service.get()


class ServiceTokenSigner:
    """Signs this service's tokens, one per audience, reusing each for half its lifetime."""

    def __init__(self, service: str, private_key_text: str, clock: Callable[[], float] = time.time) -> None:
        self._service = service
        self._key = _private_key(private_key_text)
        self._clock = clock
        self._lock = threading.Lock()
        self._tokens: dict[str, tuple[str, float]] = {}

    def token_for(self, audience: str) -> str:
        now = self._clock()
        with self._lock:
            cached = self._tokens.get(audience)
            if cached is not None and cached[1] > now:
                return cached[0]
            token = jwt.encode(
                {
                    "iss": self._service,
                    "aud": audience,
                    "iat": int(now),
                    "exp": int(now) + TOKEN_LIFETIME_SECONDS,
                    "jti": uuid.uuid4().hex,
                },
                self._key,
                algorithm="EdDSA",
            )
            self._tokens[audience] = (token, now + TOKEN_LIFETIME_SECONDS / 2)
            return token


class _ClientCallDetails(grpc.ClientCallDetails):  # type: ignore[misc]
    def __init__(self, details: grpc.ClientCallDetails, metadata: list[tuple[str, str]]) -> None:
        self.method = details.method
        self.timeout = details.timeout
        self.metadata = metadata
        self.credentials = details.credentials
        self.wait_for_ready = getattr(details, "wait_for_ready", None)
        self.compression = getattr(details, "compression", None)


class ServiceCredentialInterceptor(grpc.UnaryUnaryClientInterceptor, grpc.UnaryStreamClientInterceptor):  # type: ignore[misc]
    """Adds this service's signed token to every call on a channel to one service."""

    def __init__(self, signer: ServiceTokenSigner, audience: str) -> None:
        self._signer = signer
        self._audience = audience

    def _details(self, details: grpc.ClientCallDetails) -> _ClientCallDetails:
        metadata = [*(details.metadata or []), (METADATA_KEY, self._signer.token_for(self._audience))]
        return _ClientCallDetails(details, metadata)

    def intercept_unary_unary(self, continuation: Any, client_call_details: Any, request: Any) -> Any:
        return continuation(self._details(client_call_details), request)

    def intercept_unary_stream(self, continuation: Any, client_call_details: Any, request: Any) -> Any:
        return continuation(self._details(client_call_details), request)


def authenticated_channel(target: str, signer: ServiceTokenSigner, audience: str) -> grpc.Channel:
    """A channel to `audience` at `target` whose every call carries this service's credential."""
    return grpc.intercept_channel(grpc.insecure_channel(target), ServiceCredentialInterceptor(signer, audience))


@dataclass(frozen=True)
class MethodPolicy:
    """Which calling services may use which methods of this service. Methods not listed are refused to everyone."""

    allowed: Mapping[str, frozenset[str]]  # full method name ("/pkg.Service/Method") -> service names

    def permits(self, method: str, caller: str) -> bool:
        return caller in self.allowed.get(method, frozenset())


def _abort_handler(code: grpc.StatusCode, message: str) -> grpc.RpcMethodHandler:
    def abort(_request: Any, context: grpc.ServicerContext) -> None:
        context.abort(code, message)

    return grpc.unary_unary_rpc_method_handler(abort)


RefusalRecorder = Callable[[str, str, str], None]  # (calling service or "", method, reason)


class ServiceAuthInterceptor(grpc.ServerInterceptor):  # type: ignore[misc]
    """Verifies the calling service's token and applies the method policy before any handler runs. A refusal is
    reported to `on_refusal`, so the service can put it on its audit trail."""

    def __init__(
        self,
        service: str,
        trusted: Mapping[str, Sequence[Ed25519PublicKey]],
        policy: MethodPolicy,
        clock: Callable[[], float] = time.time,
        on_refusal: RefusalRecorder | None = None,
    ) -> None:
        self._service = service
        self._trusted = trusted
        self._policy = policy
        self._clock = clock
        self._on_refusal = on_refusal
        self._verified: dict[str, tuple[str, float]] = {}
        self._lock = threading.Lock()

    def _verified_claims(self, token: str, issuer: str) -> dict[str, Any] | None:
        """The token's claims if any trusted key of `issuer` verifies it (two keys while it rotates)."""
        for key in self._trusted.get(issuer, ()):
            try:
                claims: dict[str, Any] = jwt.decode(
                    token,
                    key=key,
                    algorithms=["EdDSA"],
                    audience=self._service,
                    issuer=issuer,
                    options={"require": ["exp", "iat", "iss", "aud"]},
                )
            except jwt.InvalidSignatureError:
                continue
            return claims
        return None

    def _caller(self, token: str) -> str | None:
        now = self._clock()
        with self._lock:
            cached = self._verified.get(token)
        if cached is not None and cached[1] > now:
            return cached[0]
        try:
            issuer = jwt.decode(token, options={"verify_signature": False}).get("iss", "")
            claims = self._verified_claims(token, str(issuer))
        except jwt.PyJWTError:
            return None
        if claims is None:
            return None
        with self._lock:
            if len(self._verified) > 10_000:
                self._verified = {t: v for t, v in self._verified.items() if v[1] > now}
            self._verified[token] = (str(claims["iss"]), float(claims["exp"]))
        return str(claims["iss"])

    def _refused(self, caller: str, method: str, reason: str) -> None:
        log.warning("service call refused", extra={"fields": {"caller": caller, "method": method, "reason": reason}})
        if self._on_refusal is not None:
            try:
                self._on_refusal(caller, method, reason)
            except Exception:
                log.exception("could not record a refused service call")

    def intercept_service(self, continuation: Any, handler_call_details: Any) -> Any:
        method: str = handler_call_details.method
        if method.startswith(OPEN_METHOD_PREFIXES):
            return continuation(handler_call_details)
        token = dict(handler_call_details.invocation_metadata or ()).get(METADATA_KEY)
        caller = self._caller(token) if isinstance(token, str) else None
        if caller is None:
            self._refused("", method, "service credential missing or invalid")
            return _abort_handler(grpc.StatusCode.UNAUTHENTICATED, "service credential missing or invalid")
        if not self._policy.permits(method, caller):
            self._refused(caller, method, "method not in the caller's role")
            return _abort_handler(grpc.StatusCode.PERMISSION_DENIED, f"{caller} may not call {method}")
        handler = continuation(handler_call_details)
        if handler is None or handler.unary_unary is None:
            return handler
        inner = handler.unary_unary

        def with_caller(request: Any, context: grpc.ServicerContext) -> Any:
            reset = _calling_service.set(caller)
            try:
                return inner(request, context)
            finally:
                _calling_service.reset(reset)

        return grpc.unary_unary_rpc_method_handler(
            with_caller,
            request_deserializer=handler.request_deserializer,
            response_serializer=handler.response_serializer,
        )


def server_interceptors(
    service: str, trusted_entries: Iterable[str], policy: MethodPolicy, on_refusal: RefusalRecorder | None = None
) -> list[grpc.ServerInterceptor]:
    """The interceptor for a server, or none (with a warning) when no trusted services are configured, as in a
    developer's single-service test run. Every deployment configures them (see deploy/)."""
    entries = [entry for entry in trusted_entries if entry.strip()]
    if not entries:
        log.warning(
            "service authentication is OFF: no trusted services configured", extra={"fields": {"service": service}}
        )
        return []
    return [ServiceAuthInterceptor(service, parse_trusted_services(entries), policy, on_refusal=on_refusal)]


def channel_to(target: str, audience: str, caller: str, service_key: str) -> grpc.Channel:
    """A channel from service `caller` to service `audience`, carrying `caller`'s credential when it has a key."""
    if not service_key:
        return grpc.insecure_channel(target)
    return authenticated_channel(target, ServiceTokenSigner(caller, service_key), audience)
