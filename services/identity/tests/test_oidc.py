"""OpenID Connect sign-in against a real provider (authlib's server components, over HTTP, started by the test):
identity starts the code flow with state, nonce and PKCE, exchanges the code, verifies the ID token, finds the
person in student records, and opens a server-side session that sign-out everywhere revokes."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from urllib.parse import parse_qs, urlsplit

import grpc
import pytest
import requests
from psycopg_pool import ConnectionPool
from tend.identity.v1 import identity_pb2, identity_pb2_grpc

from services.identity.tests.kek import TEST_WRAPPING
from services.identity.tests.oidc_provider import OidcProvider, running_provider
from tend_common.grpc_server import start_grpc_server
from tend_identity import demo
from tend_identity.grpc_service import SERVICE_NAME, IdentityServicer, register
from tend_identity.settings import Settings
from tend_identity.signing import Keyring

CLIENT_ID = "tend-portal"
CLIENT_SECRET = "a-test-client-secret"
REDIRECT_URI = "http://127.0.0.1:8000/sign-in/oidc/callback"
Stub = identity_pb2_grpc.IdentityServiceStub


@pytest.fixture
def provider() -> Iterator[OidcProvider]:
    with running_provider(CLIENT_ID, CLIENT_SECRET, REDIRECT_URI) as provider:
        yield provider


@pytest.fixture
def oidc_stub(demo_pool: ConnectionPool, identity_dsn: str, provider: OidcProvider) -> Iterator[Stub]:
    settings = Settings(
        database_url=identity_dsn,
        grpc_port=0,
        metrics_port=0,
        oidc_issuer=provider.issuer,
        oidc_client_id=CLIENT_ID,
        oidc_client_secret=CLIENT_SECRET,
        oidc_redirect_uris=(REDIRECT_URI,),
    )
    keyring = Keyring(demo_pool, retired_kept=timedelta(hours=1), wrapping=TEST_WRAPPING)
    servicer = IdentityServicer(demo_pool, keyring, settings)
    server = start_grpc_server(register(servicer), [SERVICE_NAME], port=0)
    with grpc.insecure_channel(f"127.0.0.1:{server.port}") as channel:
        yield identity_pb2_grpc.IdentityServiceStub(channel)
    server.stop(grace_seconds=1.0)
    servicer.close()


def _browser_at_provider(stub: Stub) -> tuple[str, str]:
    """Starts a sign-in and follows the browser to the provider; returns the state and code of the callback."""
    started = stub.StartOidcSignIn(identity_pb2.StartOidcSignInRequest(redirect_uri=REDIRECT_URI))
    query = parse_qs(urlsplit(started.authorization_url).query)
    assert query["code_challenge_method"] == ["S256"]
    assert query["nonce"][0]
    assert query["state"] == [started.state]
    answer = requests.get(started.authorization_url, allow_redirects=False, timeout=10)
    assert answer.status_code == 302, answer.text
    location = answer.headers["Location"]
    assert location.startswith(REDIRECT_URI)
    callback = parse_qs(urlsplit(location).query)
    return callback["state"][0], callback.get("code", [""])[0]


def test_a_member_of_staff_signs_in_with_the_provider(oidc_stub: Stub, provider: OidcProvider) -> None:
    provider.signed_in = provider.add_user("lecturer1")
    state, code = _browser_at_provider(oidc_stub)

    signed_in = oidc_stub.FinishOidcSignIn(identity_pb2.FinishOidcSignInRequest(state=state, code=code))

    assert signed_in.person.person_id == str(demo.demo_id("person", "lecturer1"))
    session = oidc_stub.GetSession(identity_pb2.GetSessionRequest(session_token=signed_in.session_token))
    assert session.person.person_id == signed_in.person.person_id
    # A code and its state are used once.
    with pytest.raises(grpc.RpcError) as replayed:
        oidc_stub.FinishOidcSignIn(identity_pb2.FinishOidcSignInRequest(state=state, code=code))
    assert replayed.value.code() == grpc.StatusCode.UNAUTHENTICATED


def test_the_provider_subject_is_remembered(oidc_stub: Stub, provider: OidcProvider, demo_pool: ConnectionPool) -> None:
    user = provider.add_user("student001")
    provider.signed_in = user
    state, code = _browser_at_provider(oidc_stub)
    first = oidc_stub.FinishOidcSignIn(identity_pb2.FinishOidcSignInRequest(state=state, code=code))
    # The provider later sends another user name for the same subject: the subject decides.
    user.preferred_username = "student-renamed"
    state, code = _browser_at_provider(oidc_stub)
    second = oidc_stub.FinishOidcSignIn(identity_pb2.FinishOidcSignInRequest(state=state, code=code))

    assert first.person.person_id == second.person.person_id == str(demo.demo_id("person", "student001"))
    assert first.person.kind == identity_pb2.PERSON_KIND_STUDENT
    with demo_pool.connection() as conn:
        rows = conn.execute("SELECT source, external_id FROM external_ids").fetchall()
    assert rows == [(f"oidc:{provider.issuer}", user.sub)]


def test_sign_out_everywhere_ends_provider_and_local_sessions(oidc_stub: Stub, provider: OidcProvider) -> None:
    provider.signed_in = provider.add_user("tutor1")
    sessions = []
    for _ in range(2):
        state, code = _browser_at_provider(oidc_stub)
        sessions.append(oidc_stub.FinishOidcSignIn(identity_pb2.FinishOidcSignInRequest(state=state, code=code)))
    local = oidc_stub.SignIn(identity_pb2.SignInRequest(username="tutor1", password=demo.DEMO_PASSWORD))

    revoked = oidc_stub.SignOutEverywhere(identity_pb2.SignOutEverywhereRequest(session_token=local.session_token))

    assert revoked.revoked == 3
    for token in [local.session_token, *(s.session_token for s in sessions)]:
        with pytest.raises(grpc.RpcError) as raised:
            oidc_stub.GetSession(identity_pb2.GetSessionRequest(session_token=token))
        assert raised.value.code() == grpc.StatusCode.NOT_FOUND


def test_nobody_outside_student_records_signs_in(oidc_stub: Stub, provider: OidcProvider) -> None:
    provider.signed_in = provider.add_user("someone-the-provider-knows")
    state, code = _browser_at_provider(oidc_stub)

    with pytest.raises(grpc.RpcError) as raised:
        oidc_stub.FinishOidcSignIn(identity_pb2.FinishOidcSignInRequest(state=state, code=code))
    assert raised.value.code() == grpc.StatusCode.UNAUTHENTICATED
    assert raised.value.details() == "sign-in failed"


def test_an_id_token_for_another_client_is_refused(oidc_stub: Stub, provider: OidcProvider) -> None:
    provider.signed_in = provider.add_user("lecturer1")
    provider.audience_override = "some-other-client"
    state, code = _browser_at_provider(oidc_stub)

    with pytest.raises(grpc.RpcError) as raised:
        oidc_stub.FinishOidcSignIn(identity_pb2.FinishOidcSignInRequest(state=state, code=code))
    assert raised.value.code() == grpc.StatusCode.UNAUTHENTICATED


def test_a_forged_state_or_code_is_refused(oidc_stub: Stub, provider: OidcProvider) -> None:
    provider.signed_in = provider.add_user("lecturer1")
    state, code = _browser_at_provider(oidc_stub)

    for forged in [
        identity_pb2.FinishOidcSignInRequest(state="a-state-identity-never-issued", code=code),
        identity_pb2.FinishOidcSignInRequest(state=state, code="a-code-the-provider-never-issued"),
    ]:
        with pytest.raises(grpc.RpcError) as raised:
            oidc_stub.FinishOidcSignIn(forged)
        assert raised.value.code() == grpc.StatusCode.UNAUTHENTICATED


def test_only_allowed_redirect_addresses(oidc_stub: Stub) -> None:
    with pytest.raises(grpc.RpcError) as raised:
        oidc_stub.StartOidcSignIn(identity_pb2.StartOidcSignInRequest(redirect_uri="https://evil.example/callback"))
    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT


def test_without_an_issuer_oidc_is_off(stub: Stub) -> None:
    with pytest.raises(grpc.RpcError) as raised:
        stub.StartOidcSignIn(identity_pb2.StartOidcSignInRequest(redirect_uri=REDIRECT_URI))
    assert raised.value.code() == grpc.StatusCode.FAILED_PRECONDITION
