"""Fraud resistance through HTTP, against real Redis and RabbitMQ: the wrong-code limit, the back-to-back room mix-up,
campus network ranges and the accepted code steps."""

from __future__ import annotations

from datetime import timedelta

from flask.testing import FlaskClient

from services.checkin.tests.web_harness import (
    NOW,
    OTHER_PSEUDONYM,
    STEP,
    Web,
    WebFactory,
    csrf_token_of,
    open_form,
    submit,
)
from tend_checkin.sessions import TeachingSession
from tend_testing.processes import free_port

LOCKED = "You have entered too many wrong codes for this session"
MIX_UP = "That code is for the previous class in this room"
OFF_NETWORK = "works only from the university&#39;s network"


def wrong_code(web: Web, session: TeachingSession) -> str:
    return f"{(int(web.code(session)) + 1) % 1_000_000:06d}"


def submit_from(
    client: FlaskClient, session: TeachingSession, code: str, remote_addr: str, forwarded_for: str | None = None
) -> tuple[int, str]:
    csrf = csrf_token_of(open_form(client, session))
    headers = {"X-Forwarded-For": forwarded_for} if forwarded_for is not None else {}
    response = client.post(
        f"/c/{session.id}",
        data={"code": code, "csrf_token": csrf},
        headers=headers,
        environ_base={"REMOTE_ADDR": remote_addr},
    )
    return response.status_code, response.get_data(as_text=True)


# --- at most five wrong codes per student per session ---


def test_sixth_attempt_is_refused_even_with_the_right_code(web: Web) -> None:
    session = web.add_session()
    client = web.client()
    for left in (4, 3, 2, 1):
        status, html = submit(client, session, wrong_code(web, session))
        assert status == 400
        assert f"You can try {left} more time" in html
    status, html = submit(client, session, wrong_code(web, session))
    assert status == 400
    assert "This was your last try." in html

    status, html = submit(client, session, web.code(session))

    assert status == 403
    assert LOCKED in html
    assert "ask the member of staff to mark your attendance" in html
    assert web.messages() == []
    # The limit is per student and per session: others are unaffected.
    assert "You are checked in" in submit(web.client(OTHER_PSEUDONYM), session, web.code(session))[1]
    other_session = web.add_session(room="LT9")
    assert "You are checked in" in submit(client, other_session, web.code(other_session))[1]


def test_five_wrong_codes_still_leave_the_right_one_on_the_fifth_try(web: Web) -> None:
    session = web.add_session()
    client = web.client()
    for _ in range(4):
        submit(client, session, wrong_code(web, session))

    status, html = submit(client, session, web.code(session))

    assert status == 200
    assert "You are checked in" in html


def test_a_student_already_checked_in_keeps_the_first_result(web: Web) -> None:
    session = web.add_session()
    client = web.client()
    submit(client, session, web.code(session))
    for _ in range(6):
        submit(client, session, wrong_code(web, session))

    status, html = submit(client, session, web.code(session))

    assert status == 200
    assert "You are already checked in" in html
    # The repeat republished the first event, unchanged (one downstream), rather than checking in anew.
    first, repeat = web.messages()
    assert repeat == first


def test_the_limit_holds_without_redis(make_web: WebFactory) -> None:
    web = make_web(redis_url=f"redis://127.0.0.1:{free_port()}/0")
    session = web.add_session()
    client = web.client()
    for _ in range(5):
        assert submit(client, session, wrong_code(web, session))[0] == 400

    status, html = submit(client, session, web.code(session))

    assert status == 403
    assert LOCKED in html
    # ... while check-ins of other students are still accepted and published.
    assert "You are checked in" in submit(web.client(OTHER_PSEUDONYM), session, web.code(session))[1]
    assert len(web.messages()) == 1


def test_the_limit_is_configurable(make_web: WebFactory) -> None:
    web = make_web(max_wrong_codes=2)
    session = web.add_session()
    client = web.client()
    submit(client, session, wrong_code(web, session))
    submit(client, session, wrong_code(web, session))

    assert submit(client, session, web.code(session))[0] == 403


# --- back-to-back classes in one room ---


def test_code_of_the_previous_class_in_the_room_names_the_mix_up(web: Web) -> None:
    earlier = web.add_session(starts_in=-timedelta(minutes=55), room="Main Building LT1")
    mine = web.add_session(starts_in=timedelta(minutes=5), room="main building lt1")
    client = web.client()

    status, html = submit(client, mine, web.code(earlier))

    assert status == 400
    assert MIX_UP in html
    assert 'role="alert"' in html
    assert web.messages() == []
    # A mix-up is not a guess: it does not count towards the limit.
    for _ in range(6):
        submit(client, mine, web.code(earlier))
    status, html = submit(client, mine, web.code(mine))
    assert status == 200
    assert "You are checked in" in html


def test_code_of_a_class_in_another_room_is_just_wrong(web: Web) -> None:
    elsewhere = web.add_session(starts_in=-timedelta(minutes=55), room="Main Building LT2")
    mine = web.add_session(room="Main Building LT1")

    status, html = submit(web.client(), mine, web.code(elsewhere))

    assert status == 400
    assert MIX_UP not in html
    assert "That code is not right or has expired" in html


def test_code_of_a_class_long_before_in_the_room_is_just_wrong(web: Web) -> None:
    morning = web.add_session(starts_in=-timedelta(hours=4), room="Main Building LT1")
    mine = web.add_session(room="Main Building LT1")

    status, html = submit(web.client(), mine, web.code(morning))

    assert status == 400
    assert MIX_UP not in html


# --- campus network ranges ---


def test_session_restricted_to_campus_networks(web: Web) -> None:
    session = web.add_session(allowed_networks=("192.0.2.0/24", "2001:db8::/32"))

    status, html = submit_from(web.client(), session, web.code(session), remote_addr="203.0.113.5")
    assert status == 403
    assert OFF_NETWORK in html
    assert web.messages() == []

    assert "You are checked in" in submit_from(web.client(), session, web.code(session), "192.0.2.44")[1]
    assert (
        "You are checked in" in submit_from(web.client(OTHER_PSEUDONYM), session, web.code(session), "2001:db8::7")[1]
    )


def test_forwarded_for_is_believed_only_from_trusted_proxies(make_web: WebFactory) -> None:
    untrusting = make_web()
    session = untrusting.add_session(allowed_networks=("192.0.2.0/24",))
    # Anyone can send the header: without a trusted proxy it is ignored.
    status, _html = submit_from(untrusting.client(), session, untrusting.code(session), "203.0.113.5", "192.0.2.9")
    assert status == 403

    web = make_web(trusted_proxies=("10.0.0.0/8",))
    session = web.add_session(allowed_networks=("192.0.2.0/24",))
    status, html = submit_from(web.client(), session, web.code(session), "10.1.2.3", "192.0.2.9, 10.9.9.9")
    assert status == 200, html
    # The student's own (spoofable) left-most entry does not count: the proxy saw 203.0.113.5 connect.
    status, _html = submit_from(
        web.client(OTHER_PSEUDONYM), session, web.code(session), "10.1.2.3", "192.0.2.9, 203.0.113.5"
    )
    assert status == 403


def test_unrestricted_session_accepts_any_network(web: Web) -> None:
    session = web.add_session()
    assert "You are checked in" in submit_from(web.client(), session, web.code(session), "203.0.113.5")[1]


# --- accepted steps, per institution ---


def test_accepted_previous_steps_are_configurable(make_web: WebFactory) -> None:
    strict = make_web(code_previous_steps=0)
    session = strict.add_session()
    previous = strict.code(session, at=NOW - timedelta(seconds=1))
    assert submit(strict.client(), session, previous)[0] == 400

    lenient = make_web(code_previous_steps=2)
    session = lenient.add_session()
    two_old = lenient.code(session, at=NOW - timedelta(seconds=STEP + 1))
    three_old = lenient.code(session, at=NOW - timedelta(seconds=2 * STEP + 1))
    assert submit(lenient.client(OTHER_PSEUDONYM), session, three_old)[0] == 400
    assert "You are checked in" in submit(lenient.client(), session, two_old)[1]
