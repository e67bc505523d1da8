"""A small, real OpenID Connect provider for tests, built from authlib's server components: discovery, a JWKS, the
authorisation endpoint (the code flow with PKCE and nonce) and the token endpoint issuing RS256-signed ID tokens.
It runs over HTTP on a free port. Whoever the test says is signed in at the provider is signed in; there is no
consent page."""

from __future__ import annotations

import secrets
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from authlib.integrations.flask_oauth2 import AuthorizationServer
from authlib.oauth2.rfc6749 import grants
from authlib.oauth2.rfc6749.models import AuthorizationCodeMixin, ClientMixin
from authlib.oauth2.rfc7636 import CodeChallenge
from authlib.oidc.core import UserInfo
from authlib.oidc.core.grants import OpenIDCode
from flask import Flask, jsonify
from joserfc.jwk import RSAKey
from werkzeug.serving import make_server
from werkzeug.wrappers import Response

from tend_testing.processes import free_port


@dataclass
class ProviderUser:
    sub: str
    preferred_username: str


@dataclass
class Client(ClientMixin):  # type: ignore[misc]
    client_id: str
    client_secret: str
    redirect_uris: list[str]

    def get_client_id(self) -> str:
        return self.client_id

    def get_default_redirect_uri(self) -> str:
        return self.redirect_uris[0]

    def get_allowed_scope(self, scope: str) -> str:
        return " ".join(s for s in scope.split() if s in ("openid", "profile", "email"))

    def check_redirect_uri(self, redirect_uri: str) -> bool:
        return redirect_uri in self.redirect_uris

    def check_client_secret(self, client_secret: str) -> bool:
        return secrets.compare_digest(client_secret, self.client_secret)

    def check_endpoint_auth_method(self, method: str, endpoint: str) -> bool:
        return method in ("client_secret_basic", "client_secret_post")

    def check_response_type(self, response_type: str) -> bool:
        return response_type == "code"

    def check_grant_type(self, grant_type: str) -> bool:
        return grant_type == "authorization_code"


@dataclass
class Code(AuthorizationCodeMixin):  # type: ignore[misc]
    code: str
    client_id: str
    redirect_uri: str
    scope: str
    nonce: str | None
    code_challenge: str | None
    code_challenge_method: str | None
    user: ProviderUser
    auth_time: int = field(default_factory=lambda: int(time.time()))

    def get_redirect_uri(self) -> str:
        return self.redirect_uri

    def get_scope(self) -> str:
        return self.scope

    def get_nonce(self) -> str | None:
        return self.nonce

    def get_auth_time(self) -> int:
        return self.auth_time

    def get_acr(self) -> None:
        return None

    def get_amr(self) -> None:
        return None


class OidcProvider:
    """The provider's state: its client, users, codes issued, signing key, and who is signed in."""

    def __init__(self, client_id: str, client_secret: str, redirect_uri: str) -> None:
        self.port = free_port()
        self.issuer = f"http://127.0.0.1:{self.port}"
        self.client = Client(client_id, client_secret, [redirect_uri])
        self.key = RSAKey.generate_key(2048, parameters={"kid": "test-key-1", "use": "sig"})
        self.users: dict[str, ProviderUser] = {}
        self.codes: dict[str, Code] = {}
        self.signed_in: ProviderUser | None = None
        # Set to make the ID token name another audience, as a provider misconfigured (or an attacker) might.
        self.audience_override: str | None = None

    def add_user(self, preferred_username: str) -> ProviderUser:
        user = ProviderUser(sub=f"sub-{secrets.token_hex(8)}", preferred_username=preferred_username)
        self.users[user.sub] = user
        return user


def _grant(provider: OidcProvider) -> type[grants.AuthorizationCodeGrant]:
    class CodeGrant(grants.AuthorizationCodeGrant):  # type: ignore[misc]
        TOKEN_ENDPOINT_AUTH_METHODS = ["client_secret_basic", "client_secret_post"]

        def save_authorization_code(self, code: str, request: Any) -> None:
            data = request.payload.data
            provider.codes[code] = Code(
                code=code,
                client_id=request.client.client_id,
                redirect_uri=data.get("redirect_uri", ""),
                scope=request.payload.scope,
                nonce=data.get("nonce"),
                code_challenge=data.get("code_challenge"),
                code_challenge_method=data.get("code_challenge_method"),
                user=request.user,
            )

        def query_authorization_code(self, code: str, client: Client) -> Code | None:
            found = provider.codes.get(code)
            return found if found is not None and found.client_id == client.client_id else None

        def delete_authorization_code(self, authorization_code: Code) -> None:
            provider.codes.pop(authorization_code.code, None)

        def authenticate_user(self, authorization_code: Code) -> ProviderUser:
            return authorization_code.user

    return CodeGrant


def _openid(provider: OidcProvider) -> OpenIDCode:
    class ProviderOpenIDCode(OpenIDCode):  # type: ignore[misc]
        def exists_nonce(self, nonce: str, request: Any) -> bool:
            return any(code.nonce == nonce for code in provider.codes.values())

        def resolve_client_private_key(self, client: Client) -> RSAKey:
            return provider.key

        def get_client_algorithm(self, client: Client) -> str:
            return "RS256"

        def get_client_claims(self, client: Client) -> dict[str, Any]:
            return {"iss": provider.issuer, "aud": [provider.audience_override or client.client_id]}

        def get_encode_header(self, client: Client) -> dict[str, str]:
            return {"alg": "RS256", "kid": "test-key-1"}

        def generate_user_info(self, user: ProviderUser, scope: str) -> UserInfo:
            return UserInfo(sub=user.sub, preferred_username=user.preferred_username)

    return ProviderOpenIDCode(require_nonce=True)


def _app(provider: OidcProvider) -> Flask:
    app = Flask("test-oidc-provider")
    server = AuthorizationServer(
        app,
        query_client=lambda client_id: provider.client if client_id == provider.client.client_id else None,
        save_token=lambda token, request: None,
    )
    server.register_grant(_grant(provider), [_openid(provider), CodeChallenge(required=True)])

    @app.get("/.well-known/openid-configuration")
    def discovery() -> Response:
        return jsonify(
            issuer=provider.issuer,
            authorization_endpoint=f"{provider.issuer}/authorize",
            token_endpoint=f"{provider.issuer}/token",
            jwks_uri=f"{provider.issuer}/jwks",
            response_types_supported=["code"],
            subject_types_supported=["public"],
            id_token_signing_alg_values_supported=["RS256"],
        )

    @app.get("/jwks")
    def jwks() -> Response:
        return jsonify(keys=[provider.key.as_dict(private=False)])

    @app.get("/authorize")
    def authorize() -> Response:
        grant = server.get_consent_grant(end_user=provider.signed_in)
        response: Response = server.create_authorization_response(grant=grant, grant_user=provider.signed_in)
        return response

    @app.post("/token")
    def token() -> Response:
        response: Response = server.create_token_response()
        return response

    return app


@contextmanager
def running_provider(client_id: str, client_secret: str, redirect_uri: str) -> Iterator[OidcProvider]:
    provider = OidcProvider(client_id, client_secret, redirect_uri)
    server = make_server("127.0.0.1", provider.port, _app(provider), threaded=True)
    thread = threading.Thread(target=server.serve_forever, name="test-oidc-provider", daemon=True)
    thread.start()
    try:
        yield provider
    finally:
        server.shutdown()
        thread.join(5)
