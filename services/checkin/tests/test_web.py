"""The student check-in pages through Flask's test client, with real PostgreSQL, Redis and RabbitMQ and a fake
identity over real gRPC."""

from __future__ import annotations

import logging
import re
import uuid
from datetime import UTC, timedelta
from urllib.parse import parse_qs, urlsplit

import pytest
import redis
from flask.testing import FlaskClient
from tend.checkin.v1 import events_pb2 as checkin_events_pb2

from services.checkin.tests.web_harness import (
    NOW,
    OTHER_PSEUDONYM,
    PSEUDONYM,
    ROUTING_KEY,
    STEP,
    Web,
    WebFactory,
    csrf_token_of,
    open_form,
    submit,
)
from tend_checkin.events import ATTENDANCE_EVENT_NAMESPACE
from tend_checkin.handoff import COOKIE_NAME
from tend_common.messaging.topology import Topology, declare_consumer_queue
from tend_testing.processes import free_port

# --- checking in ---


def test_check_in_publishes_a_confirmed_attendance_event(web: Web) -> None:
    session = web.add_session()
    status, html = submit(web.client(), session, web.code(session))

    assert status == 200
    assert "You are checked in" in html
    assert "Main Building LT1" in html
    [(properties, event)] = web.messages()
    expected_id = str(uuid.uuid5(ATTENDANCE_EVENT_NAMESPACE, f"{session.id}:{PSEUDONYM}"))
    assert event.meta.event_id == expected_id
    assert properties.message_id == expected_id
    assert properties.type == "tend.checkin.v1.AttendanceRecorded"
    assert event.meta.producer == "checkin"
    assert event.session_id == str(session.id)
    assert event.module_run_id == session.module_run_id
    assert event.student_pseudonym == PSEUDONYM
    assert event.source == checkin_events_pb2.ATTENDANCE_SOURCE_CODE
    assert event.recorded_at.ToDatetime(tzinfo=UTC) == NOW
    assert event.session_starts_at.ToDatetime(tzinfo=UTC) == session.starts_at


def test_wrong_code_is_refused(web: Web) -> None:
    session = web.add_session()
    right = web.code(session)
    wrong = f"{(int(right) + 1) % 1_000_000:06d}"

    status, html = submit(web.client(), session, wrong)

    assert status == 400
    assert "That code is not right or has expired" in html
    assert 'role="alert"' in html
    assert web.messages() == []


def test_previous_step_passes(web: Web) -> None:
    session = web.add_session()
    previous = web.code(session, at=NOW - timedelta(seconds=1))  # NOW is a step boundary
    assert previous != web.code(session)

    status, html = submit(web.client(), session, previous)

    assert status == 200
    assert "You are checked in" in html
    assert len(web.messages()) == 1


def test_two_steps_old_fails(web: Web) -> None:
    session = web.add_session()
    two_old = web.code(session, at=NOW - timedelta(seconds=STEP + 1))

    status, html = submit(web.client(), session, two_old)

    assert status == 400
    assert "That code is not right or has expired" in html
    assert web.messages() == []


def test_code_for_one_session_fails_for_another(web: Web) -> None:
    session_a = web.add_session(room="LT1")
    session_b = web.add_session(room="LT2")

    status, html = submit(web.client(), session_b, web.code(session_a))

    assert status == 400
    assert "That code is not right or has expired" in html
    assert web.messages() == []


def test_repeat_returns_the_first_result_and_the_same_event_id(web: Web) -> None:
    session = web.add_session()
    client = web.client()
    submit(client, session, web.code(session))
    first_time = f"{NOW.astimezone(web.app.extensions['tend_checkin'].display_zone):%H:%M}"

    web.clock.now = NOW + timedelta(minutes=3)
    status, html = submit(client, session, web.code(session))

    assert status == 200
    assert "You are already checked in" in html
    assert f"Recorded at {first_time}" in html
    # The first check-in left its mark pending, so the first repeat published the very same event again (applied
    # once downstream); having had it confirmed, it marked it so, and the next repeat publishes nothing.
    [(_properties, event), (_properties, republished)] = web.messages()
    assert republished == event
    status, html = submit(client, session, web.code(session))
    assert status == 200
    assert f"Recorded at {first_time}" in html
    assert web.messages() == []

    # Redis forgets (restart, eviction): the repeat is published again, as the same event, for downstream to drop.
    redis.Redis.from_url(web.settings.redis_url).delete(*web.redis_keys())
    status, html = submit(client, session, web.code(session))
    assert status == 200
    [(_properties, again)] = web.messages()
    assert again.meta.event_id == event.meta.event_id


def test_students_are_recorded_separately(web: Web) -> None:
    session = web.add_session()
    submit(web.client(PSEUDONYM), session, web.code(session))
    status, html = submit(web.client(OTHER_PSEUDONYM), session, web.code(session))

    assert status == 200
    assert "You are checked in" in html
    events = [event for _properties, event in web.messages()]
    assert {event.student_pseudonym for event in events} == {PSEUDONYM, OTHER_PSEUDONYM}
    assert len({event.meta.event_id for event in events}) == 2


def test_malformed_code_gets_a_clear_message(web: Web) -> None:
    session = web.add_session()
    client = web.client()
    for code in ("12345", "1234567", "12a456", "", "٠١٢٣٤٥"):
        status, html = submit(client, session, code)
        assert status == 400, code
        assert "Enter the 6-digit code shown on the screen." in html
        assert 'role="alert"' in html
        assert 'aria-invalid="true"' in html
    assert web.messages() == []


def test_too_early_and_closed(web: Web) -> None:
    early = web.add_session(starts_in=timedelta(minutes=30))  # check-in opens in 20 minutes
    status, html = submit(web.client(), early, web.code(early))
    assert status == 403
    assert "Too early" in html

    over = web.add_session(starts_in=-timedelta(hours=2))
    status, html = submit(web.client(), over, web.code(over))
    assert status == 403
    assert "Check-in for this session has closed" in html
    assert web.messages() == []


def test_unknown_session_is_a_404_page(web: Web) -> None:
    client = web.client()
    for path in (f"/c/{uuid.uuid4()}", "/c/not-a-uuid"):
        response = client.get(path)
        assert response.status_code == 404
        assert "Session not found" in response.get_data(as_text=True)

    session = web.add_session()
    csrf = csrf_token_of(open_form(client, session))
    response = client.post(f"/c/{uuid.uuid4()}", data={"code": "123456", "csrf_token": csrf})
    assert response.status_code == 404


def test_failed_publish_is_reported_and_forgotten(make_web: WebFactory) -> None:
    web = make_web(bind_queue=False)  # no queue takes the event: the mandatory publish is refused
    session = web.add_session()
    client = web.client()

    status, html = submit(client, session, web.code(session))

    assert status == 503
    assert "We could not record your check-in, please try again" in html
    assert web.redis_keys() == []

    # Once the broker takes the event, the retry succeeds as a first check-in.
    declare_consumer_queue(web.channel, Topology(web.settings.amqp_namespace), web.queue, [ROUTING_KEY])
    status, html = submit(client, session, web.code(session))
    assert "You are checked in" in html
    assert len(web.messages()) == 1


def test_check_in_without_redis_still_publishes(make_web: WebFactory) -> None:
    web = make_web(redis_url=f"redis://127.0.0.1:{free_port()}/0")
    session = web.add_session()

    status, html = submit(web.client(), session, web.code(session))

    assert status == 200
    assert "You are checked in" in html
    assert len(web.messages()) == 1
    assert web.client().get("/readyz").status_code == 200, "a Redis outage must not take the replica out of service"


def test_get_never_changes_state(web: Web) -> None:
    session = web.add_session()
    html = open_form(web.client(), session, code=web.code(session))

    assert f'value="{web.code(session)}"' in html
    assert web.redis_keys() == []
    assert web.messages() == []


def test_post_without_csrf_token_is_refused(web: Web) -> None:
    session = web.add_session()
    client = web.client()
    csrf = csrf_token_of(open_form(client, session))

    for data in ({"code": web.code(session)}, {"code": web.code(session), "csrf_token": csrf[:-2] + "xx"}):
        response = client.post(f"/c/{session.id}", data=data)
        assert response.status_code == 400
        assert "This form has expired" in response.get_data(as_text=True)
    assert web.messages() == []
    assert web.redis_keys() == []


# --- the token hand-off ---


def portal_redirect(web: Web, client: FlaskClient, path: str) -> dict[str, str]:
    response = client.get(path)
    assert response.status_code == 303
    location = urlsplit(response.headers["Location"])
    assert f"{location.scheme}://{location.netloc}{location.path}" == "http://tend.example.ac.uk/checkin-token"
    query = {name: values[0] for name, values in parse_qs(location.query).items()}
    assert set(query) == {"next", "state"}
    return query


def test_missing_token_redirects_to_the_portal_with_state(web: Web) -> None:
    session = web.add_session()
    code = web.code(session)
    client = web.client(pseudonym=None)

    query = portal_redirect(web, client, f"/c/{session.id}?code={code}")

    assert query["next"] == f"http://checkin.example.ac.uk/c/{session.id}?code={code}"
    assert len(query["state"]) >= 32
    assert web.redis_keys() == []


def test_invalid_token_cookie_counts_as_missing(web: Web) -> None:
    session = web.add_session()
    client = web.client(pseudonym=None)
    invalid = {
        "for another audience": web.identity.sign(PSEUDONYM, audience="portal"),
        "expired": web.identity.sign(PSEUDONYM, lifetime_seconds=60, issued_seconds_ago=600),
        # A person assertion names a person id, which must never be taken for a pseudonym.
        "a person assertion": web.identity.assertion("0b6f1c1e-6a53-4c39-9a43-5f2d8c1c2a10", kind="student"),
    }
    for case, token in invalid.items():
        client.set_cookie(COOKIE_NAME, token)
        assert client.get(f"/c/{session.id}").status_code == 303, case


def test_token_hand_off_sets_the_cookie_and_returns_to_the_form(web: Web) -> None:
    session = web.add_session()
    code = web.code(session)
    client = web.client(pseudonym=None)
    state = portal_redirect(web, client, f"/c/{session.id}?code={code}")["state"]

    # No CSRF form token: the state nonce does that job for this one POST.
    response = client.post("/token", data={"token": web.identity.sign(PSEUDONYM, lifetime_seconds=900), "state": state})

    assert response.status_code == 303
    assert response.headers["Location"] == f"/c/{session.id}?code={code}"
    cookie = response.headers["Set-Cookie"]
    assert cookie.startswith(f"{COOKIE_NAME}=")
    assert "HttpOnly" in cookie
    assert "SameSite=Lax" in cookie
    assert "Secure" not in cookie  # the test host is http
    max_age = int(re.search(r"Max-Age=(\d+)", cookie).group(1))  # type: ignore[union-attr]
    assert 890 <= max_age <= 900

    html = open_form(client, session, code=code)
    assert f'value="{code}"' in html

    # The nonce works once.
    again = client.post("/token", data={"token": web.identity.sign(OTHER_PSEUDONYM), "state": state})
    assert again.status_code == 400


def test_token_hand_off_with_the_wrong_state_is_refused(web: Web) -> None:
    session = web.add_session()
    victim = web.client(pseudonym=None)
    portal_redirect(web, victim, f"/c/{session.id}")
    attacker = web.client(pseudonym=None)
    attackers_state = portal_redirect(web, attacker, f"/c/{session.id}")["state"]

    for state in ("", "made-up", attackers_state):
        response = victim.post("/token", data={"token": web.identity.sign("psn_attacker"), "state": state})
        assert response.status_code == 400
        assert "Set-Cookie" not in response.headers or COOKIE_NAME not in response.headers["Set-Cookie"]
    assert victim.get_cookie(COOKIE_NAME) is None


def test_token_hand_off_with_an_invalid_token_is_refused(web: Web) -> None:
    session = web.add_session()
    client = web.client(pseudonym=None)
    state = portal_redirect(web, client, f"/c/{session.id}")["state"]

    for token in (web.identity.sign(PSEUDONYM, audience="portal"), web.identity.assertion("person-1", kind="student")):
        response = client.post("/token", data={"token": token, "state": state})
        assert response.status_code == 400
        assert client.get_cookie(COOKIE_NAME) is None
        # A refused hand-off uses up its nonce; the student starts again from the check-in link.
        state = portal_redirect(web, client, f"/c/{session.id}")["state"]


def test_cookies_are_secure_on_an_https_host(make_web: WebFactory) -> None:
    web = make_web(public_base_url="https://checkin.example.ac.uk")
    session = web.add_session()
    client = web.app.test_client()
    response = client.get(f"/c/{session.id}", base_url="https://checkin.example.ac.uk")
    state = parse_qs(urlsplit(response.headers["Location"]).query)["state"][0]
    assert "Secure" in response.headers["Set-Cookie"]

    response = client.post(
        "/token", data={"token": web.identity.sign(PSEUDONYM), "state": state}, base_url="https://checkin.example.ac.uk"
    )

    assert response.status_code == 303
    assert "Secure" in response.headers["Set-Cookie"]


def test_post_without_token_is_sent_to_the_portal(web: Web) -> None:
    session = web.add_session()
    client = web.client()
    csrf = csrf_token_of(open_form(client, session))
    client.delete_cookie(COOKIE_NAME)

    response = client.post(f"/c/{session.id}", data={"code": web.code(session), "csrf_token": csrf})

    assert response.status_code == 303
    assert response.headers["Location"].startswith("http://tend.example.ac.uk/checkin-token?")
    assert web.messages() == []


# --- the page itself ---


def test_form_is_accessible_and_plain(web: Web) -> None:
    session = web.add_session()
    response = web.client().get(f"/c/{session.id}")
    html = response.get_data(as_text=True)

    assert '<html lang="en">' in html
    assert '<label for="code">' in html
    assert 'id="code"' in html
    assert 'inputmode="numeric"' in html
    assert "<script" not in html
    assert response.headers["Cache-Control"] == "no-store"
    assert "frame-ancestors 'none'" in response.headers["Content-Security-Policy"]


def test_identity_unreachable_at_first_verification_is_a_503_page(web: Web) -> None:
    session = web.add_session()
    client = web.client()
    web.identity.stop()  # this process has not fetched identity's keys yet

    response = client.get(f"/c/{session.id}")

    assert response.status_code == 503
    assert "Check-in is unavailable for a moment" in response.get_data(as_text=True)


def test_health_routes(web: Web) -> None:
    client = web.client(pseudonym=None)
    assert client.get("/healthz").status_code == 200
    assert client.get("/readyz").status_code == 200


def test_logs_never_carry_the_pseudonym_or_token(web: Web, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    session = web.add_session()
    client = web.client()
    token = client.get_cookie(COOKIE_NAME)
    assert token is not None
    submit(client, session, "000000")
    submit(client, session, web.code(session))

    assert PSEUDONYM not in caplog.text
    assert token.value not in caplog.text
