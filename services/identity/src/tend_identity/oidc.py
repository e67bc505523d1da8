"""Signing in with the institution's OpenID Connect provider (authorisation code flow with PKCE), for staff and
students alike.

Start: a random state, nonce and PKCE verifier are kept server-side (only a SHA-256 of the state), and the browser is
sent to the provider. Finish: the state is taken (once, before it expires), the code is exchanged at the token
endpoint, the ID token is verified (signature against the provider's published keys, issuer, audience, expiry,
nonce), and the person is found: by the provider's subject if seen before, else by the user name claim, which must
name a person already in student records (sign-in never creates people). Then a server-side session is opened,
exactly as a local sign-in does.
"""

from __future__ import annotations

import hashlib
import logging
import secrets
import threading
import time
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import requests
from authlib.integrations.requests_client import OAuth2Session
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet
from psycopg_pool import ConnectionPool

from tend_identity import sessions
from tend_identity.accounts import SignedIn
from tend_identity.settings import Settings
from tend_identity.store import Connection, identifiers
from tend_identity.store import people as people_store

log = logging.getLogger(__name__)

PENDING_LIFETIME = timedelta(minutes=10)
HTTP_TIMEOUT_SECONDS = 10.0
DISCOVERY_CACHE_SECONDS = 3600.0
CLOCK_LEEWAY_SECONDS = 60
# ID tokens are signed with asymmetric keys; "none" and HMAC are refused.
ALLOWED_ALGORITHMS = ["RS256", "ES256", "EdDSA", "PS256"]


class OidcRefused(Exception):
    """The sign-in cannot be completed: unknown or expired state, a refused code, a bad ID token, or nobody in
    student records for the person the provider names. Deliberately one error for all."""


@dataclass(frozen=True)
class Started:
    authorization_url: str
    state: str


def _digest(state: str) -> bytes:
    return hashlib.sha256(state.encode("utf-8")).digest()


class OidcSignIn:
    def __init__(self, settings: Settings, http: requests.Session | None = None) -> None:
        self._settings = settings
        self._http = http or requests.Session()
        self._lock = threading.Lock()
        self._discovery: dict[str, Any] | None = None
        self._keys: KeySet | None = None
        self._fetched_at = float("-inf")

    @property
    def enabled(self) -> bool:
        return bool(self._settings.oidc_issuer)

    @property
    def _source(self) -> str:
        return "oidc:" + self._settings.oidc_issuer

    def _client(self, redirect_uri: str) -> OAuth2Session:
        return OAuth2Session(
            self._settings.oidc_client_id,
            self._settings.oidc_client_secret or None,
            scope="openid profile email",
            redirect_uri=redirect_uri,
            code_challenge_method="S256",
        )

    def _provider(self, refresh: bool = False) -> tuple[dict[str, Any], KeySet]:
        """The provider's discovery document and signing keys, cached; re-read when asked (an unknown key id)."""
        with self._lock:
            fresh = time.monotonic() - self._fetched_at < DISCOVERY_CACHE_SECONDS
            if self._discovery is not None and self._keys is not None and fresh and not refresh:
                return self._discovery, self._keys
        issuer = self._settings.oidc_issuer.rstrip("/")
        response = self._http.get(f"{issuer}/.well-known/openid-configuration", timeout=HTTP_TIMEOUT_SECONDS)
        response.raise_for_status()
        discovery: dict[str, Any] = response.json()
        if discovery.get("issuer", "").rstrip("/") != issuer:
            raise OidcRefused("the discovery document names another issuer")
        keys_response = self._http.get(discovery["jwks_uri"], timeout=HTTP_TIMEOUT_SECONDS)
        keys_response.raise_for_status()
        keys = KeySet.import_key_set(keys_response.json())
        with self._lock:
            self._discovery, self._keys, self._fetched_at = discovery, keys, time.monotonic()
        return discovery, keys

    def start(self, conn: Connection, redirect_uri: str, now: datetime) -> Started:
        discovery, _keys = self._provider()
        state = secrets.token_urlsafe(32)
        nonce = secrets.token_urlsafe(32)
        verifier = secrets.token_urlsafe(48)
        url, _state = self._client(redirect_uri).create_authorization_url(
            discovery["authorization_endpoint"], state=state, nonce=nonce, code_verifier=verifier
        )
        conn.execute("DELETE FROM oidc_sign_ins WHERE expires_at <= %s", (now,))
        conn.execute(
            "INSERT INTO oidc_sign_ins (state_sha256, nonce, code_verifier, redirect_uri, expires_at)"
            " VALUES (%s, %s, %s, %s, %s)",
            (_digest(state), nonce, verifier, redirect_uri, now + PENDING_LIFETIME),
        )
        return Started(authorization_url=url, state=state)

    def finish(self, pool: ConnectionPool, state: str, code: str, now: datetime, ttl: timedelta) -> SignedIn:
        with pool.connection() as conn:
            row = conn.execute(
                "DELETE FROM oidc_sign_ins WHERE state_sha256 = %s RETURNING nonce, code_verifier, redirect_uri,"
                " expires_at",
                (_digest(state),),
            ).fetchone()
        if row is None or row[3] <= now:
            raise OidcRefused("unknown or expired state")
        nonce, verifier, redirect_uri = row[0], row[1], row[2]
        claims = self._verified_claims(self._exchange(code, verifier, redirect_uri), nonce)
        with pool.connection() as conn:
            person_id = self._person_of(conn, claims)
            person = people_store.person(conn, person_id)
            if person is None:
                raise OidcRefused("the person is no longer known")
            expires_at = now + ttl
            token = sessions.open_session(conn, person.id, expires_at)
        log.info("signed in with openid connect", extra={"fields": {"person_id": str(person.id)}})
        return SignedIn(token=token, person=person, expires_at=expires_at)

    def _exchange(self, code: str, verifier: str, redirect_uri: str) -> str:
        discovery, _keys = self._provider()
        client = self._client(redirect_uri)
        try:
            token = client.fetch_token(
                discovery["token_endpoint"],
                code=code,
                code_verifier=verifier,
                timeout=HTTP_TIMEOUT_SECONDS,
            )
        except Exception as exc:  # authlib raises its own errors and requests' alike
            raise OidcRefused("the provider refused the code") from exc
        id_token = token.get("id_token")
        if not isinstance(id_token, str):
            raise OidcRefused("no ID token")
        return id_token

    def _verified_claims(self, id_token: str, nonce: str) -> dict[str, Any]:
        _discovery, keys = self._provider()
        try:
            try:
                decoded = jwt.decode(id_token, keys, algorithms=ALLOWED_ALGORITHMS)
            except JoseError:
                # A key rotated at the provider since the keys were read.
                _discovery, keys = self._provider(refresh=True)
                decoded = jwt.decode(id_token, keys, algorithms=ALLOWED_ALGORITHMS)
            registry = jwt.JWTClaimsRegistry(
                leeway=CLOCK_LEEWAY_SECONDS,
                iss={"essential": True, "value": self._settings.oidc_issuer.rstrip("/")},
                aud={"essential": True, "value": self._settings.oidc_client_id},
                sub={"essential": True},
                exp={"essential": True},
                nonce={"essential": True, "value": nonce},
            )
            registry.validate(decoded.claims)
        except (JoseError, ValueError) as exc:
            raise OidcRefused("the ID token does not verify") from exc
        return dict(decoded.claims)

    def _person_of(self, conn: Connection, claims: dict[str, Any]) -> uuid.UUID:
        subject = str(claims["sub"])
        known = identifiers.people_by_external_id(conn, self._source, [subject])
        if subject in known:
            found: uuid.UUID = known[subject]
            return found
        username = claims.get(self._settings.oidc_username_claim)
        record = people_store.sign_in_record(conn, username) if isinstance(username, str) and username else None
        if record is None:
            raise OidcRefused("nobody in student records has this user name")
        identifiers.link_external_id(conn, self._source, subject, record.person_id)
        return record.person_id
