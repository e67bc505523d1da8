"""Browser sessions whose cookies are checked once per process: same contents as Flask's own, and nothing that
Flask's own would refuse is accepted from memory."""

from __future__ import annotations

from datetime import timedelta
from types import SimpleNamespace

import itsdangerous.timed
import pytest
from flask import Flask, session
from flask.testing import FlaskClient

from tend_checkin.browser_sessions import RememberingCookieSessions

COOKIE = "session"


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def app(clock: Clock) -> Flask:
    app = Flask(__name__)
    app.config.update(SECRET_KEY="s" * 40, PERMANENT_SESSION_LIFETIME=timedelta(hours=1))
    app.session_interface = RememberingCookieSessions(max_entries=2, clock=clock)

    @app.post("/set/<name>/<value>")
    def set_value(name: str, value: str) -> str:
        session[name] = value
        return "ok"

    @app.post("/append/<value>")
    def append(value: str) -> str:
        session["list"] = [*session.get("list", []), value]
        return "ok"

    @app.post("/push-in-place/<value>")
    def push_in_place(value: str) -> str:
        # Changes the list without assigning it: must not reach another request's copy.
        session.setdefault("nested", [[]])[0].append(value)
        return "ok"

    @app.get("/show")
    def show() -> dict[str, object]:
        return dict(session)

    return app


def _cookie(client: FlaskClient) -> str:
    cookie = client.get_cookie(COOKIE)
    assert cookie is not None
    return cookie.value


def test_a_remembered_cookie_gives_the_same_contents_each_time(app: Flask, clock: Clock) -> None:
    client = app.test_client()
    client.post("/set/csrf/abc")
    client.post("/append/one")
    clock.now = _signed_at(app, _cookie(client))

    assert client.get("/show").json == {"csrf": "abc", "list": ["one"]}
    assert client.get("/show").json == {"csrf": "abc", "list": ["one"]}


def test_a_change_made_in_place_by_one_request_does_not_reach_the_next(app: Flask, clock: Clock) -> None:
    client = app.test_client()
    client.post("/push-in-place/first")
    cookie = _cookie(client)
    clock.now = _signed_at(app, cookie)

    client.get("/show")  # remembered now
    client.post("/push-in-place/second")  # an in-place change Flask does not notice, so no new cookie
    assert _cookie(client) == cookie

    assert client.get("/show").json == {"nested": [["first"]]}


def test_a_tampered_cookie_is_refused_every_time(app: Flask) -> None:
    client = app.test_client()
    client.post("/set/csrf/abc")
    good = _cookie(client)
    payload, _, signature = good.rpartition(".")
    client.set_cookie(COOKIE, f"{payload}.{'A' * len(signature)}")

    assert client.get("/show").json == {}
    assert client.get("/show").json == {}


def test_a_remembered_cookie_expires_with_the_session_lifetime(
    app: Flask, clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    # itsdangerous signs and checks on the same clock as the memory, so only the memory could accept an old cookie.
    clock.now = 1_800_000_000.0
    monkeypatch.setattr(itsdangerous.timed, "time", SimpleNamespace(time=clock))
    client = app.test_client()
    client.post("/set/csrf/abc")
    cookie = _cookie(client)

    clock.now += 3600
    assert client.get("/show").json == {"csrf": "abc"}
    assert cookie in app.session_interface._verified  # type: ignore[attr-defined]

    clock.now += 1
    assert client.get("/show").json == {}


def test_at_most_max_entries_are_remembered(app: Flask) -> None:
    for value in ("a", "b", "c"):
        client = app.test_client()
        client.post(f"/set/csrf/{value}")
        client.get("/show")

    assert len(app.session_interface._verified) == 2  # type: ignore[attr-defined]


def _signed_at(app: Flask, cookie: str) -> float:
    interface = app.session_interface
    assert isinstance(interface, RememberingCookieSessions)
    serializer = interface.get_signing_serializer(app)
    assert serializer is not None
    _contents, signed_at = serializer.loads(cookie, return_timestamp=True)
    return float(signed_at.timestamp())
