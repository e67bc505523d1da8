"""The lean check-in path (lean_checkin.py) against the Flask view it stands in for: the same answers, each check-in
recorded once, and everything it does not take left to Flask. Real PostgreSQL, Redis and RabbitMQ; a fake identity
over real gRPC."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import psycopg
import pytest
from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from services.checkin.tests.web_harness import OTHER_PSEUDONYM, PSEUDONYM, Web, csrf_token_of, open_form
from tend_checkin import views
from tend_checkin.recording import CheckinRecorder
from tend_checkin.web_context import WebContext


def _count_view_calls(web: Web) -> list[str]:
    """Replaces the check-in view with one that notes each call: a request the lean path answers never reaches it."""
    calls: list[str] = []
    view: Callable[..., Any] = web.app.view_functions[views.CHECK_IN]

    def counted(session_id: str) -> Any:
        calls.append(session_id)
        return view(session_id=session_id)

    web.app.view_functions[views.CHECK_IN] = counted
    return calls


def _post(client: FlaskClient, session_id: object, code: str, **kwargs: Any) -> TestResponse:
    html = open_form(client, kwargs.pop("form_session")) if "form_session" in kwargs else None
    data = {"code": code, "csrf_token": csrf_token_of(html)} if html is not None else kwargs.pop("data")
    return client.post(f"/c/{session_id}", data=data, **kwargs)


def test_lean_path_answers_exactly_as_the_view_does(web: Web) -> None:
    calls = _count_view_calls(web)
    session = web.add_session()
    code = web.code(session)

    # The first success page of a process is rendered by Jinja, in the view; later ones come from the lean path.
    by_view = _post(web.client(PSEUDONYM), session.id, code, form_session=session)
    assert len(calls) == 1
    by_lean_path = _post(web.client(OTHER_PSEUDONYM), session.id, code, form_session=session)
    assert len(calls) == 1, "the second check-in should not have reached the Flask view"

    assert by_view.status_code == by_lean_path.status_code == 200
    assert "You are checked in" in by_lean_path.get_data(as_text=True)
    assert by_lean_path.get_data() == by_view.get_data()
    assert sorted(by_lean_path.headers.items()) == sorted(by_view.headers.items())
    assert by_lean_path.headers["Vary"] == "Cookie"
    assert by_lean_path.headers["Cache-Control"] == "no-store"
    assert "Set-Cookie" not in by_lean_path.headers
    assert {event.student_pseudonym for _, event in web.messages()} == {PSEUDONYM, OTHER_PSEUDONYM}


def test_a_repeat_from_the_lean_path_is_already_checked_in(web: Web) -> None:
    session = web.add_session()
    client = web.client()
    code = web.code(session)
    _post(client, session.id, code, form_session=session)
    calls = _count_view_calls(web)

    repeat = _post(client, session.id, code, form_session=session)

    assert calls == []
    assert "You are already checked in" in repeat.get_data(as_text=True)


def test_a_wrong_code_is_counted_once_and_answered_by_the_view(web: Web) -> None:
    calls = _count_view_calls(web)
    session = web.add_session()
    wrong = "000000" if web.code(session) != "000000" else "111111"

    response = _post(web.client(), session.id, wrong, form_session=session)

    assert response.status_code == 400
    assert "You can try 4 more times." in response.get_data(as_text=True)
    assert len(calls) == 1


def test_a_failure_while_recording_gets_the_views_error_page(web: Web, monkeypatch: pytest.MonkeyPatch) -> None:
    context: WebContext = web.app.extensions["tend_checkin"]
    recorded: list[str] = []

    def failing_record(self: CheckinRecorder, *args: Any, **kwargs: Any) -> Any:
        recorded.append("record")
        raise psycopg.OperationalError("the database went away")

    monkeypatch.setattr(type(context.recorder), "record", failing_record)
    session = web.add_session()

    response = _post(web.client(), session.id, web.code(session), form_session=session)

    assert response.status_code == 503
    assert "Check-in is unavailable for a moment" in response.get_data(as_text=True)
    assert recorded == ["record"], "recorded once, by the lean path; the view only answers"


def test_requests_the_lean_path_does_not_take_go_to_flask(web: Web) -> None:
    calls = _count_view_calls(web)
    session = web.add_session()
    client = web.client()
    csrf = csrf_token_of(open_form(client, session))
    code = web.code(session)

    # A multipart form: Flask reads it and records the check-in.
    multipart = client.post(
        f"/c/{session.id}", data={"code": code, "csrf_token": csrf}, content_type="multipart/form-data"
    )
    assert multipart.status_code == 200
    assert "You are checked in" in multipart.get_data(as_text=True)
    assert len(calls) == 1
    assert len(web.messages()) == 1

    # No CSRF token: refused by Flask's CSRF check, before any view.
    refused = client.post(f"/c/{session.id}", data={"code": code})
    assert refused.status_code == 400
    assert "This form has expired" in refused.get_data(as_text=True)

    # Not a session id: the view's 404 page.
    missing = client.post("/c/not-a-session", data={"code": code, "csrf_token": csrf})
    assert missing.status_code == 404

    # A body over the limit: werkzeug's 413.
    too_big = client.post(f"/c/{session.id}", data={"code": code, "csrf_token": csrf, "pad": "x" * 20_000})
    assert too_big.status_code == 413
    assert web.messages() == []
