"""Teaching sessions: the check-in window and the planning of a new session."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from tend_checkin.sessions import SECRET_BYTES, WindowState, plan_session, window_state

START = datetime(2026, 10, 5, 9, 0, tzinfo=UTC)


def test_plan_opens_the_window_before_the_start_and_closes_it_at_the_end() -> None:
    session = plan_session("run-1", "LT1", START, timedelta(minutes=50), timedelta(minutes=10), "person-1")
    assert session.ends_at == START + timedelta(minutes=50)
    assert session.checkin_opens_at == START - timedelta(minutes=10)
    assert session.checkin_closes_at == session.ends_at
    assert len(session.code_secret) == SECRET_BYTES
    assert session.opened_by == "person-1"


def test_each_session_gets_its_own_id_and_secret() -> None:
    first = plan_session("run-1", "LT1", START, timedelta(hours=1), timedelta(minutes=10), "p")
    second = plan_session("run-1", "LT1", START, timedelta(hours=1), timedelta(minutes=10), "p")
    assert first.id != second.id
    assert first.code_secret != second.code_secret


def test_secret_is_not_in_the_repr() -> None:
    session = plan_session("run-1", "LT1", START, timedelta(hours=1), timedelta(minutes=10), "p")
    assert "code_secret" not in repr(session)


def test_window_boundaries() -> None:
    session = plan_session("run-1", "LT1", START, timedelta(hours=1), timedelta(minutes=10), "p")
    tick = timedelta(microseconds=1)
    assert window_state(session, session.checkin_opens_at - tick) is WindowState.NOT_YET_OPEN
    assert window_state(session, session.checkin_opens_at) is WindowState.OPEN
    assert window_state(session, session.checkin_closes_at - tick) is WindowState.OPEN
    assert window_state(session, session.checkin_closes_at) is WindowState.CLOSED
