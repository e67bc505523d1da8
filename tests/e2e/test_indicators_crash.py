"""Indicators is killed (SIGKILL) while students check in, and restarted: every accepted check-in is stored exactly
once, because checkin counts a check-in as accepted only after the broker confirmed it, and indicators acknowledges
only after committing it with its event id."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import psycopg
import pytest

from tend_testing.flows import check_in_from_scanned_address, open_session, presented_code, sign_in
from tend_testing.running_suite import RunningSuite

pytestmark = [pytest.mark.e2e, pytest.mark.fault, pytest.mark.xdist_group("indicators-crash")]

STUDENTS = 60


def _stored(dsn: str, session_id: str) -> list[str]:
    with psycopg.connect(dsn) as conn:
        rows = conn.execute("SELECT student_pseudonym FROM attendance WHERE session_id = %s", (session_id,))
        return [str(row[0]) for row in rows.fetchall()]


def test_every_accepted_check_in_is_stored_once_across_an_indicators_crash(running_suite: RunningSuite) -> None:
    portal = running_suite.config.portal_url
    lecturer = sign_in(portal, "lecturer1")
    presenter_url = open_session(lecturer, portal, room="Crash Test Hall")
    students = [f"student{n:03d}" for n in range(1, STUDENTS + 1)]
    lock = threading.Lock()
    accepted: list[str] = []
    refused: list[str] = []
    done = 0

    def check_in(username: str) -> None:
        nonlocal done
        browser = sign_in(portal, username)
        with lock:
            presented = presented_code(lecturer, presenter_url)
        response = check_in_from_scanned_address(browser, presented.checkin_url)
        with lock:
            done += 1
            if response.status_code == 200 and "You are checked in" in response.text:
                accepted.append(username)
            else:
                refused.append(f"{username}: {response.status_code} {response.text[-600:]}")

    indicators = running_suite.suite.processes["indicators"]
    with ThreadPoolExecutor(max_workers=6) as pool:
        futures = [pool.submit(check_in, username) for username in students]
        while done < STUDENTS // 3:
            time.sleep(0.05)
        indicators.kill()
        while done < 2 * STUDENTS // 3:
            time.sleep(0.05)
        running_suite.suite.start_process("indicators")
        for future in futures:
            future.result()

    session_id = presented_code(lecturer, presenter_url).session_id
    assert refused == [], "with only indicators down, every check-in should still be accepted"
    deadline = time.monotonic() + 30
    stored = _stored(running_suite.database("indicators"), session_id)
    while len(stored) < len(accepted) and time.monotonic() < deadline:
        time.sleep(0.2)
        stored = _stored(running_suite.database("indicators"), session_id)
    assert len(stored) == len(set(stored)) == len(accepted)
    published = {m.event_id for m in running_suite.tap.drain() if m.routing_key == "checkin.attendance_recorded.v1"}
    assert len(published) == len(accepted)
