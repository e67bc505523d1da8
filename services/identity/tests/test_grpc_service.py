"""The IdentityService over a real gRPC server, against a real database holding the demo university."""

from __future__ import annotations

import base64
import json
import uuid
from datetime import UTC, datetime, timedelta

import grpc
import pytest
from psycopg_pool import ConnectionPool
from tend.audit.v1 import events_pb2
from tend.identity.v1 import identity_pb2, identity_pb2_grpc

from tend_common.identity_keys import identity_key_fetcher
from tend_common.tokens import InvalidToken, TokenVerifier
from tend_identity import demo, sessions
from tend_identity.audit_events import ROUTING_KEY
from tend_identity.signing import Keyring
from tend_identity.store import keys as key_store
from tend_identity.store import organisation as org_store

Stub = identity_pb2_grpc.IdentityServiceStub
CS101 = str(demo.demo_id("module_run", "CS101"))


def _session_for(pool: ConnectionPool, username: str, ttl: timedelta = timedelta(hours=1)) -> str:
    """A session opened directly, sparing the argon2 check the sign-in tests already make."""
    with pool.connection() as conn:
        return sessions.open_session(conn, demo.demo_id("person", username), datetime.now(UTC) + ttl)


def _assertion(stub: Stub, pool: ConnectionPool, username: str) -> str:
    response = stub.GetSession(
        identity_pb2.GetSessionRequest(session_token=_session_for(pool, username), audiences=["portal"])
    )
    return str(response.assertions["portal"])


def _claims(token: str) -> dict[str, object]:
    payload = token.split(".")[1]
    claims: dict[str, object] = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    return claims


def _outbox_audit_events(pool: ConnectionPool) -> list[events_pb2.AuditEvent]:
    with pool.connection() as conn:
        rows = conn.execute("SELECT routing_key, type_name, body FROM outbox ORDER BY id").fetchall()
    assert all(routing_key == ROUTING_KEY for routing_key, _type, _body in rows)
    assert all(type_name == "tend.audit.v1.AuditEvent" for _key, type_name, _body in rows)
    return [events_pb2.AuditEvent.FromString(bytes(body)) for _key, _type, body in rows]


def test_sign_in_opens_a_session_with_assertions_for_each_audience(stub: Stub, channel: grpc.Channel) -> None:
    signed_in = stub.SignIn(identity_pb2.SignInRequest(username="lecturer1", password=demo.DEMO_PASSWORD))

    person = signed_in.person
    assert person.person_id == str(demo.demo_id("person", "lecturer1"))
    assert person.kind == identity_pb2.PERSON_KIND_STAFF
    assert list(person.roles) == ["lecturer"]
    assert person.display_name.split()[-1].startswith("Canary-")
    assert signed_in.expires_at.ToDatetime(tzinfo=UTC) > datetime.now(UTC) + timedelta(hours=7)

    session = stub.GetSession(
        identity_pb2.GetSessionRequest(session_token=signed_in.session_token, audiences=["checkin", "portal"])
    )
    assert session.person == person
    assert set(session.assertions) == {"checkin", "portal"}
    for audience, assertion in session.assertions.items():
        claims = TokenVerifier(identity_key_fetcher(channel), audience=audience).verify(assertion)
        assert claims["sub"] == person.person_id
        assert claims["kind"] == "staff"
        assert claims["exp"] - claims["iat"] == 300
    with pytest.raises(InvalidToken):
        TokenVerifier(identity_key_fetcher(channel), audience="checkin").verify(session.assertions["portal"])


def test_sign_in_refusals_are_identical_and_say_nothing(stub: Stub) -> None:
    failures = []
    for username, password in [("lecturer1", "wrong"), ("nobody-here", demo.DEMO_PASSWORD)]:
        with pytest.raises(grpc.RpcError) as raised:
            stub.SignIn(identity_pb2.SignInRequest(username=username, password=password))
        failures.append((raised.value.code(), raised.value.details()))

    assert failures == [(grpc.StatusCode.UNAUTHENTICATED, "sign-in failed")] * 2


def test_sign_in_requires_both_fields(stub: Stub) -> None:
    with pytest.raises(grpc.RpcError) as raised:
        stub.SignIn(identity_pb2.SignInRequest(username="lecturer1"))

    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT


def test_only_a_hash_of_the_session_token_is_stored(stub: Stub, demo_pool: ConnectionPool) -> None:
    token = _session_for(demo_pool, "student001")

    with demo_pool.connection() as conn:
        stored = conn.execute("SELECT token_sha256 FROM sign_in_sessions").fetchall()
    assert stored == [(sessions.token_digest(token),)]
    assert token.encode() not in bytes(stored[0][0])


def test_sign_out_ends_the_session(stub: Stub, demo_pool: ConnectionPool) -> None:
    token = _session_for(demo_pool, "student001")
    stub.SignOut(identity_pb2.SignOutRequest(session_token=token))

    with pytest.raises(grpc.RpcError) as raised:
        stub.GetSession(identity_pb2.GetSessionRequest(session_token=token))
    assert raised.value.code() == grpc.StatusCode.NOT_FOUND
    stub.SignOut(identity_pb2.SignOutRequest(session_token="never-issued"))


@pytest.mark.parametrize("token", ["", "never-issued", "x" * 5000])
def test_an_unknown_session_is_not_found(stub: Stub, token: str) -> None:
    with pytest.raises(grpc.RpcError) as raised:
        stub.GetSession(identity_pb2.GetSessionRequest(session_token=token))

    assert raised.value.code() == grpc.StatusCode.NOT_FOUND
    assert raised.value.details() == "no open session"


def test_an_expired_session_is_not_found(stub: Stub, demo_pool: ConnectionPool) -> None:
    token = _session_for(demo_pool, "student001", ttl=timedelta(seconds=-1))

    with pytest.raises(grpc.RpcError) as raised:
        stub.GetSession(identity_pb2.GetSessionRequest(session_token=token))
    assert raised.value.code() == grpc.StatusCode.NOT_FOUND


def test_the_checkin_token_names_the_student_by_pseudonym_only(
    stub: Stub, channel: grpc.Channel, demo_pool: ConnectionPool
) -> None:
    student_id = demo.demo_id("person", "student001")
    response = stub.IssueCheckinToken(
        identity_pb2.IssueCheckinTokenRequest(session_token=_session_for(demo_pool, "student001"))
    )

    claims = TokenVerifier(identity_key_fetcher(channel), audience="checkin").verify(response.token)
    assert claims["sub"].startswith("p_")
    assert claims["exp"] - claims["iat"] == 3600
    assert claims["jti"]
    assert response.expires_at.seconds == claims["exp"]
    with demo_pool.connection() as conn:
        assert key_store.person_of_pseudonym(conn, claims["sub"]) == student_id
        canaries = demo.demo_canaries(conn)
    token_text = json.dumps(_claims(response.token))
    for identifying in [str(student_id), student_id.hex, "student001", *canaries]:
        assert identifying not in token_text

    again = stub.IssueCheckinToken(
        identity_pb2.IssueCheckinTokenRequest(session_token=_session_for(demo_pool, "student001"))
    )
    assert _claims(again.token)["sub"] == claims["sub"]
    assert _claims(again.token)["jti"] != claims["jti"]


def test_staff_get_no_checkin_token(stub: Stub, demo_pool: ConnectionPool) -> None:
    with pytest.raises(grpc.RpcError) as raised:
        stub.IssueCheckinToken(
            identity_pb2.IssueCheckinTokenRequest(session_token=_session_for(demo_pool, "lecturer1"))
        )

    assert raised.value.code() == grpc.StatusCode.PERMISSION_DENIED


def test_no_checkin_token_without_a_session(stub: Stub) -> None:
    with pytest.raises(grpc.RpcError) as raised:
        stub.IssueCheckinToken(identity_pb2.IssueCheckinTokenRequest(session_token="never-issued"))

    assert raised.value.code() == grpc.StatusCode.UNAUTHENTICATED


def test_public_keys_list_the_current_key_first(stub: Stub, keyring: Keyring) -> None:
    before = stub.GetPublicKeys(identity_pb2.GetPublicKeysRequest()).keys
    new = keyring.rotate()
    after = stub.GetPublicKeys(identity_pb2.GetPublicKeysRequest()).keys

    assert len(before) == 1
    assert before[0].algorithm == "EdDSA"
    assert len(before[0].public_key) == 32
    assert [key.key_id for key in after] == [new.kid, before[0].key_id]


def test_check_access_allows_the_teacher_and_audits_it(stub: Stub, demo_pool: ConnectionPool) -> None:
    assertion = _assertion(stub, demo_pool, "lecturer1")

    response = stub.CheckAccess(
        identity_pb2.CheckAccessRequest(
            actor_assertion=assertion,
            action="teaching_session.open",
            resource=identity_pb2.Resource(kind="module_run", id=CS101),
            purpose="take attendance",
        ),
        metadata=[("x-request-id", "req-123")],
    )

    assert response.allowed
    assert response.rule == "module_run.teaching_session.open"
    assert response.reason
    (event,) = _outbox_audit_events(demo_pool)
    assert event.actor.kind == events_pb2.ACTOR_KIND_PERSON
    assert event.actor.id == str(demo.demo_id("person", "lecturer1"))
    assert event.action == "teaching_session.open"
    assert (event.subject.kind, event.subject.id) == ("module_run", CS101)
    assert event.purpose == "take attendance"
    assert event.outcome == events_pb2.OUTCOME_ALLOWED
    assert event.origin_service == "identity"
    assert event.meta.producer == "identity"
    assert event.meta.request_id == "req-123"
    assert uuid.UUID(event.meta.event_id)


@pytest.mark.parametrize("username", ["lecturer2", "student001", "dpo1"])
def test_check_access_refuses_everyone_else_and_audits_it(stub: Stub, demo_pool: ConnectionPool, username: str) -> None:
    response = stub.CheckAccess(
        identity_pb2.CheckAccessRequest(
            actor_assertion=_assertion(stub, demo_pool, username),
            action="teaching_session.present",
            resource=identity_pb2.Resource(kind="module_run", id=CS101),
        )
    )

    assert not response.allowed
    assert response.rule == "module_run.teaching_session.present"
    (event,) = _outbox_audit_events(demo_pool)
    assert event.outcome == events_pb2.OUTCOME_REFUSED
    assert event.actor.id == str(demo.demo_id("person", username))


def test_check_access_needs_an_action_and_a_resource(stub: Stub, demo_pool: ConnectionPool) -> None:
    assertion = _assertion(stub, demo_pool, "lecturer1")
    resource = identity_pb2.Resource(kind="module_run", id=CS101)
    for request in [
        identity_pb2.CheckAccessRequest(actor_assertion=assertion, resource=resource),
        identity_pb2.CheckAccessRequest(actor_assertion=assertion, action="teaching_session.open"),
        identity_pb2.CheckAccessRequest(
            actor_assertion=assertion,
            action="teaching_session.open",
            resource=identity_pb2.Resource(kind="module_run", id="Ada Lovelace <ada@example.org>"),
        ),
    ]:
        with pytest.raises(grpc.RpcError) as raised:
            stub.CheckAccess(request)
        assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "Ada" not in raised.value.details()
    assert _outbox_audit_events(demo_pool) == []


def test_check_access_rejects_a_bad_assertion(stub: Stub, demo_pool: ConnectionPool) -> None:
    assertion = _assertion(stub, demo_pool, "lecturer1")
    header, payload, signature = assertion.split(".")
    claims = _claims(assertion)
    claims["sub"] = str(demo.demo_id("person", "lecturer2"))
    forged_payload = base64.urlsafe_b64encode(json.dumps(claims).encode()).decode().rstrip("=")
    for bad in ["", "not.a.token", f"{header}.{forged_payload}.{signature}", f"{header}.{payload}.{signature[:-4]}"]:
        with pytest.raises(grpc.RpcError) as raised:
            stub.CheckAccess(
                identity_pb2.CheckAccessRequest(
                    actor_assertion=bad,
                    action="teaching_session.open",
                    resource=identity_pb2.Resource(kind="module_run", id=CS101),
                )
            )
        assert raised.value.code() == grpc.StatusCode.UNAUTHENTICATED
    assert _outbox_audit_events(demo_pool) == []


def test_check_access_rejects_an_expired_assertion(stub: Stub, keyring: Keyring) -> None:
    long_ago = int((datetime.now(UTC) - timedelta(hours=1)).timestamp())
    expired = keyring.sign(
        {
            "iss": "tend-identity",
            "sub": str(demo.demo_id("person", "lecturer1")),
            "aud": "portal",
            "iat": long_ago,
            "exp": long_ago + 300,
            "kind": "staff",
        }
    )

    with pytest.raises(grpc.RpcError) as raised:
        stub.CheckAccess(
            identity_pb2.CheckAccessRequest(
                actor_assertion=expired,
                action="teaching_session.open",
                resource=identity_pb2.Resource(kind="module_run", id=CS101),
            )
        )
    assert raised.value.code() == grpc.StatusCode.UNAUTHENTICATED


def test_a_checkin_token_is_not_an_assertion(stub: Stub, demo_pool: ConnectionPool) -> None:
    token = stub.IssueCheckinToken(
        identity_pb2.IssueCheckinTokenRequest(session_token=_session_for(demo_pool, "student001"))
    ).token

    with pytest.raises(grpc.RpcError) as raised:
        stub.ListTeachingModuleRuns(identity_pb2.ListTeachingModuleRunsRequest(actor_assertion=token))
    assert raised.value.code() == grpc.StatusCode.UNAUTHENTICATED


def test_teaching_module_runs_in_module_code_order(stub: Stub, demo_pool: ConnectionPool) -> None:
    response = stub.ListTeachingModuleRuns(
        identity_pb2.ListTeachingModuleRunsRequest(actor_assertion=_assertion(stub, demo_pool, "lecturer2"))
    )

    assert [(run.module_code, run.title, run.term) for run in response.module_runs] == [
        ("CS102", "Computer Systems", "2026/27 autumn"),
        ("CS201", "Databases", "2026/27 autumn"),
    ]
    assert response.module_runs[0].module_run_id == str(demo.demo_id("module_run", "CS102"))
    student = stub.ListTeachingModuleRuns(
        identity_pb2.ListTeachingModuleRunsRequest(actor_assertion=_assertion(stub, demo_pool, "student001"))
    )
    assert list(student.module_runs) == []


def test_a_withdrawn_module_is_no_longer_listed(stub: Stub, demo_pool: ConnectionPool) -> None:
    with demo_pool.connection() as conn:
        org_store.withdraw_module(conn, demo.demo_id("module", "CS201"))

    response = stub.ListTeachingModuleRuns(
        identity_pb2.ListTeachingModuleRunsRequest(actor_assertion=_assertion(stub, demo_pool, "lecturer2"))
    )
    assert [run.module_code for run in response.module_runs] == ["CS102"]


def test_an_unexpected_failure_is_internal_and_says_nothing(stub: Stub, demo_pool: ConnectionPool) -> None:
    stub.GetPublicKeys(identity_pb2.GetPublicKeysRequest())
    with demo_pool.connection() as conn:
        conn.execute("DROP TABLE signing_keys")

    with pytest.raises(grpc.RpcError) as raised:
        stub.GetPublicKeys(identity_pb2.GetPublicKeysRequest())
    assert raised.value.code() == grpc.StatusCode.INTERNAL
    assert raised.value.details() == "internal error"
