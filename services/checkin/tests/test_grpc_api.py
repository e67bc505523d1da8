"""The CheckinService gRPC API against a real database and a fake identity over real gRPC."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from functools import partial

import grpc
import psycopg
import pytest
from tend.audit.v1 import events_pb2 as audit_events_pb2
from tend.checkin.v1 import checkin_pb2

from services.checkin.tests.grpc_harness import (
    DENIED_REASON,
    MODULE_RUN,
    NOW,
    OPEN,
    PRESENT,
    STAFF,
    Api,
    open_request,
    stamp,
    status_of,
)
from tend_checkin import codes


def test_open_session_stores_the_session_and_its_audit_event(api: Api) -> None:
    api.identity.allow(STAFF, OPEN, "module_run", MODULE_RUN)

    session = api.stub.OpenSession(open_request(api)).session

    start = datetime(2026, 10, 5, 9, 0, tzinfo=UTC)
    assert session.module_run_id == MODULE_RUN
    assert session.room == "Main Building LT1"
    assert session.starts_at.ToDatetime(tzinfo=UTC) == start
    assert session.ends_at.ToDatetime(tzinfo=UTC) == start + timedelta(minutes=50)
    assert session.checkin_opens_at.ToDatetime(tzinfo=UTC) == start - timedelta(minutes=10)
    assert session.checkin_closes_at.ToDatetime(tzinfo=UTC) == start + timedelta(minutes=50)

    [(session_id, room, secret, opened_by)] = api.rows("SELECT id, room, code_secret, opened_by FROM teaching_sessions")
    assert str(session_id) == session.session_id
    assert room == "Main Building LT1"
    assert isinstance(secret, bytes)
    assert len(secret) == 32
    assert opened_by == STAFF

    [(routing_key, type_name, body)] = api.rows("SELECT routing_key, type_name, body FROM outbox")
    assert routing_key == "audit.recorded.v1"
    assert type_name == "tend.audit.v1.AuditEvent"
    assert isinstance(body, bytes)
    audit = audit_events_pb2.AuditEvent.FromString(body)
    assert audit.actor == audit_events_pb2.Actor(kind=audit_events_pb2.ACTOR_KIND_PERSON, id=STAFF)
    assert audit.action == OPEN
    assert audit.subject == audit_events_pb2.Subject(kind="teaching_session", id=session.session_id)
    assert audit.outcome == audit_events_pb2.OUTCOME_ALLOWED
    assert audit.origin_service == "checkin"
    assert audit.meta.producer == "checkin"
    uuid.UUID(audit.meta.event_id)

    [asked] = api.identity.access_requests
    assert (asked.action, asked.resource.kind, asked.resource.id) == (OPEN, "module_run", MODULE_RUN)


def test_open_session_defaults_to_now_and_an_hour(api: Api) -> None:
    api.identity.allow(STAFF, OPEN, "module_run", MODULE_RUN)
    request = checkin_pb2.OpenSessionRequest(actor_assertion=api.assertion(), module_run_id=MODULE_RUN, room=" LT2 ")

    session = api.stub.OpenSession(request).session

    assert session.room == "LT2"
    assert session.starts_at.ToDatetime(tzinfo=UTC) == NOW
    assert session.ends_at.ToDatetime(tzinfo=UTC) == NOW + timedelta(hours=1)


def test_audit_event_and_session_are_written_in_one_transaction(api: Api) -> None:
    # Make the second write (the outbox) fail: the session written just before it must not survive.
    with psycopg.connect(api.settings.database_url, autocommit=True) as conn:
        conn.execute(
            "CREATE FUNCTION refuse() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION 'no'; END $$"
        )
        conn.execute("CREATE TRIGGER refuse BEFORE INSERT ON outbox FOR EACH ROW EXECUTE FUNCTION refuse()")
    api.identity.allow(STAFF, OPEN, "module_run", MODULE_RUN)

    assert status_of(lambda: api.stub.OpenSession(open_request(api))) == grpc.StatusCode.UNKNOWN

    assert api.rows("SELECT id FROM teaching_sessions") == []


def test_open_session_is_refused_when_identity_refuses(api: Api) -> None:
    with pytest.raises(grpc.RpcError) as raised:
        api.stub.OpenSession(open_request(api))

    assert raised.value.code() == grpc.StatusCode.PERMISSION_DENIED
    assert raised.value.details() == DENIED_REASON
    assert api.rows("SELECT id FROM teaching_sessions") == []
    assert api.rows("SELECT id FROM outbox") == []


def test_open_session_is_refused_for_another_module_run(api: Api) -> None:
    api.identity.allow(STAFF, OPEN, "module_run", "some-other-run")
    assert status_of(lambda: api.stub.OpenSession(open_request(api))) == grpc.StatusCode.PERMISSION_DENIED


def test_a_bad_assertion_is_unauthenticated(api: Api) -> None:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    api.identity.allow(STAFF, OPEN, "module_run", MODULE_RUN)
    bad_assertions = {
        "missing": "",
        "not a token": "not-a-token",
        "for another audience": api.identity.assertion(STAFF, audience="portal"),
        "expired": api.identity.assertion(STAFF, lifetime_seconds=60, issued_seconds_ago=600),
        "signed by another key": api.identity.assertion(STAFF, key=Ed25519PrivateKey.generate()),
        "from another issuer": api.identity.assertion(STAFF, issuer="someone-else"),
        "a student's check-in token": api.identity.sign("psn_someone"),
    }
    for case, assertion in bad_assertions.items():
        request = open_request(api, actor_assertion=assertion)
        assert status_of(partial(api.stub.OpenSession, request)) == grpc.StatusCode.UNAUTHENTICATED, case

    assert api.identity.access_requests == []
    assert api.rows("SELECT id FROM teaching_sessions") == []


def test_invalid_requests_are_refused(api: Api) -> None:
    api.identity.allow(STAFF, OPEN, "module_run", MODULE_RUN)
    cases: list[tuple[dict[str, object], str]] = [
        ({"module_run_id": ""}, "module_run_id is required"),
        ({"module_run_id": "m" * 101}, "module_run_id must be at most 100 characters"),
        ({"room": "   "}, "room is required"),
        ({"room": "x" * 101}, "room must be at most 100 characters"),
        ({"duration_minutes": 601}, "duration_minutes must be between 1 and 600"),
        ({"starts_at": stamp(NOW + timedelta(days=400))}, "starts_at must be within a year of now"),
    ]
    for fields, message in cases:
        with pytest.raises(grpc.RpcError) as raised:
            api.stub.OpenSession(open_request(api, **fields))
        assert (raised.value.code(), raised.value.details()) == (grpc.StatusCode.INVALID_ARGUMENT, message)

    assert api.rows("SELECT id FROM teaching_sessions") == []


def test_room_of_exactly_100_characters_and_600_minutes_are_accepted(api: Api) -> None:
    api.identity.allow(STAFF, OPEN, "module_run", MODULE_RUN)
    session = api.stub.OpenSession(open_request(api, room="r" * 100, duration_minutes=600)).session
    assert session.ends_at.ToDatetime(tzinfo=UTC) - session.starts_at.ToDatetime(tzinfo=UTC) == timedelta(hours=10)


def test_presenter_code_is_the_current_code_with_its_check_in_address(api: Api) -> None:
    api.identity.allow(STAFF, OPEN, "module_run", MODULE_RUN)
    api.identity.allow(STAFF, PRESENT, "module_run", MODULE_RUN)
    session = api.stub.OpenSession(open_request(api)).session

    shown = api.stub.GetPresenterCode(
        checkin_pb2.GetPresenterCodeRequest(actor_assertion=api.assertion(), session_id=session.session_id)
    )

    [(secret,)] = api.rows("SELECT code_secret FROM teaching_sessions")
    assert isinstance(secret, bytes)
    assert shown.code == codes.current_code(secret, NOW, 15, 6)
    assert shown.checkin_url == f"http://checkin.example.ac.uk/c/{session.session_id}?code={shown.code}"
    # NOW is 8:55:07, so the code rotates at the next 15-second boundary.
    assert shown.rotates_at.ToDatetime(tzinfo=UTC) == datetime(2026, 10, 5, 8, 55, 15, tzinfo=UTC)
    assert shown.step_seconds == 15
    assert shown.session == session
    assert api.identity.access_requests[-1].action == PRESENT
    assert api.identity.access_requests[-1].resource.id == MODULE_RUN


def test_presenter_code_needs_the_present_right(api: Api) -> None:
    api.identity.allow(STAFF, OPEN, "module_run", MODULE_RUN)
    session = api.stub.OpenSession(open_request(api)).session
    request = checkin_pb2.GetPresenterCodeRequest(actor_assertion=api.assertion(), session_id=session.session_id)

    assert status_of(lambda: api.stub.GetPresenterCode(request)) == grpc.StatusCode.PERMISSION_DENIED


def test_presenter_code_of_an_unknown_session_is_not_found(api: Api) -> None:
    request = checkin_pb2.GetPresenterCodeRequest(actor_assertion=api.assertion(), session_id=str(uuid.uuid4()))
    assert status_of(lambda: api.stub.GetPresenterCode(request)) == grpc.StatusCode.NOT_FOUND
    malformed = checkin_pb2.GetPresenterCodeRequest(actor_assertion=api.assertion(), session_id="nope")
    assert status_of(lambda: api.stub.GetPresenterCode(malformed)) == grpc.StatusCode.INVALID_ARGUMENT


def test_presenter_code_needs_a_valid_assertion(api: Api) -> None:
    request = checkin_pb2.GetPresenterCodeRequest(actor_assertion="forged", session_id=str(uuid.uuid4()))
    assert status_of(lambda: api.stub.GetPresenterCode(request)) == grpc.StatusCode.UNAUTHENTICATED


def test_identity_unreachable_is_unavailable(api: Api) -> None:
    api.identity.allow(STAFF, OPEN, "module_run", MODULE_RUN)
    request = open_request(api)
    api.identity.stop()

    assert status_of(lambda: api.stub.OpenSession(request)) == grpc.StatusCode.UNAVAILABLE
    assert api.rows("SELECT id FROM teaching_sessions") == []
