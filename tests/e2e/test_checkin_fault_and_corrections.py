"""2,000 check-ins through real processes while the check-in web process is killed (SIGKILL) and restarted, indicators'
consumer is stopped for part of the run, and checkin's Redis state is lost (as a Redis restart without persistence
would): students whose attempt failed simply try again, and afterwards indicators holds every accepted check-in
exactly once. Then a lecturer corrects attendance in bulk through the portal (the class list, and a list of student
numbers), and the privacy canaries: nothing identifying reached checkin's database, Redis, logs or messages.

One module, one running suite: starting the whole suite is the slow part."""

from __future__ import annotations

import asyncio
import base64
import html
import json
import re
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import psycopg
import pytest
import redis
from tend.checkin.v1 import checkin_pb2, checkin_pb2_grpc
from tend.checkin.v1 import events_pb2 as checkin_events
from tend.identity.v1 import identity_pb2, identity_pb2_grpc

from bench.checkin_load import TOKEN_COOKIE, Attempt, Connection, Phone, classify, prepare_phones
from tend_testing.canaries import find_in_bytes, find_in_database, find_in_redis, find_in_text
from tend_testing.flows import DEMO_PASSWORD, form_value, sign_in
from tend_testing.running_suite import RunningSuite

pytestmark = [pytest.mark.e2e, pytest.mark.fault, pytest.mark.xdist_group("checkin-fault")]

# Signing in is deliberately slow (argon2), so few students, each checking in to many sessions.
STUDENTS = 20
SESSIONS = 100
CONCURRENCY = 12


def _pseudonym(token: str) -> str:
    payload = token.split(".")[1]
    return str(json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))["sub"])


def _phones(identity: identity_pb2_grpc.IdentityServiceStub) -> list[Phone]:
    def sign_in(n: int) -> Phone:
        signed = identity.SignIn(identity_pb2.SignInRequest(username=f"student{n:03d}", password=DEMO_PASSWORD))
        token = identity.IssueCheckinToken(identity_pb2.IssueCheckinTokenRequest(session_token=signed.session_token))
        return Phone(_pseudonym(token.token), {TOKEN_COOKIE: token.token})

    with ThreadPoolExecutor(max_workers=4) as pool:
        return list(pool.map(sign_in, range(1, STUDENTS + 1)))


def _open_sessions(
    identity: identity_pb2_grpc.IdentityServiceStub, checkin: checkin_pb2_grpc.CheckinServiceStub
) -> list[str]:
    signed = identity.SignIn(identity_pb2.SignInRequest(username="lecturer1", password=DEMO_PASSWORD))
    session = identity.GetSession(
        identity_pb2.GetSessionRequest(session_token=signed.session_token, audiences=["checkin", "identity"])
    )
    assertion = session.assertions["checkin"]
    # Identity accepts from the portal (whose credential this stub carries) only assertions issued for identity.
    runs = identity.ListTeachingModuleRuns(
        identity_pb2.ListTeachingModuleRunsRequest(actor_assertion=session.assertions["identity"])
    )
    return [
        checkin.OpenSession(
            checkin_pb2.OpenSessionRequest(
                actor_assertion=assertion,
                module_run_id=runs.module_runs[0].module_run_id,
                room=f"Fault Test Hall {n}",
            )
        ).session.session_id
        for n in range(SESSIONS)
    ]


def _stored(dsn: str, session_ids: list[str]) -> list[tuple[str, str]]:
    with psycopg.connect(dsn) as conn:
        rows = conn.execute(
            "SELECT session_id::text, student_pseudonym FROM attendance WHERE session_id = ANY(%s::uuid[])",
            (session_ids,),
        ).fetchall()
    return [(str(a), str(b)) for a, b in rows]


async def _check_everyone_in(
    base_url: str, attempts: list[Attempt], faults: list[tuple[int, Callable[[], None]]]
) -> tuple[set[tuple[str, str]], int]:
    """Sends every attempt, again and again until it is accepted; runs each fault once that many are accepted.
    Returns the accepted (session, pseudonym) pairs and how many attempts failed along the way."""
    host, port = base_url.removeprefix("http://").split(":")
    pending: asyncio.Queue[Attempt] = asyncio.Queue()
    for attempt in attempts:
        pending.put_nowait(attempt)
    accepted: set[tuple[str, str]] = set()
    failures = 0
    remaining_faults = sorted(faults, key=lambda fault: fault[0])

    async def student() -> None:
        nonlocal failures
        connection = Connection(host, int(port))
        while len(accepted) < len(attempts):
            try:
                attempt = pending.get_nowait()
            except asyncio.QueueEmpty:
                await asyncio.sleep(0.05)
                continue
            form = f"code={attempt.code_now()}&csrf_token={attempt.phone.csrf_token}".encode()
            headers = {"Cookie": attempt.phone.cookie_header(), "Content-Type": "application/x-www-form-urlencoded"}
            try:
                status, _head, body = await connection.request("POST", f"/c/{attempt.session_id}", headers, form)
                result = classify(status, body)
            except (OSError, asyncio.IncompleteReadError):
                await connection.close()
                result = "error"
            if result in {"recorded", "already"}:
                accepted.add((attempt.session_id, attempt.phone.pseudonym))
            else:
                failures += 1
                await asyncio.sleep(0.1)  # the student looks at the message, then presses again
                pending.put_nowait(attempt)
        await connection.close()

    async def faults_at_thresholds() -> None:
        while remaining_faults:
            if len(accepted) >= remaining_faults[0][0]:
                await asyncio.to_thread(remaining_faults.pop(0)[1])
            else:
                await asyncio.sleep(0.02)

    runs: list[Awaitable[None]] = [student() for _ in range(CONCURRENCY)]
    await asyncio.wait_for(asyncio.gather(*runs, faults_at_thresholds()), timeout=180)
    return accepted, failures


@dataclass(frozen=True)
class LoadRun:
    session_ids: list[str]
    accepted: set[tuple[str, str]]
    failures: int
    elapsed: float


@pytest.fixture(scope="module")
def load_run(running_suite: RunningSuite) -> LoadRun:
    """The faulty load run, once for the module's assertions."""
    suite = running_suite.suite
    config = running_suite.config
    # The test acts as the portal would, with the portal's service credential.
    identity = identity_pb2_grpc.IdentityServiceStub(config.channel_as("portal", "identity"))
    checkin = checkin_pb2_grpc.CheckinServiceStub(config.channel_as("portal", "checkin"))
    phones = _phones(identity)
    session_ids = _open_sessions(identity, checkin)
    asyncio.run(prepare_phones(config.checkin_url, session_ids[0], phones))
    with psycopg.connect(config.databases["checkin"]) as conn:
        secrets: dict[str, bytes] = dict(
            conn.execute(
                "SELECT id::text, code_secret FROM teaching_sessions WHERE id = ANY(%s::uuid[])", (session_ids,)
            ).fetchall()
        )
    attempts = [Attempt(phone, sid, secret=bytes(secrets[sid])) for sid in session_ids for phone in phones]
    assert len(attempts) == 2_000

    def stop_indicators() -> None:
        suite.processes["indicators"].kill()

    def kill_and_restart_web() -> None:
        suite.processes["checkin-web"].kill()
        time.sleep(0.5)
        suite.start_process("checkin-web")

    def lose_redis_state() -> None:
        client = redis.Redis.from_url(config.redis_url)
        keys = list(client.scan_iter(match=f"{config.redis_prefix}*", count=1000))
        if keys:
            client.delete(*keys)
        client.close()

    def restart_indicators() -> None:
        suite.start_process("indicators")

    faults = [
        (300, stop_indicators),
        (600, kill_and_restart_web),
        (1_000, lose_redis_state),
        (1_400, restart_indicators),
    ]
    started = time.monotonic()
    accepted, failures = asyncio.run(_check_everyone_in(config.checkin_url, attempts, faults))
    return LoadRun(session_ids, accepted, failures, time.monotonic() - started)


def test_accepted_check_ins_survive_a_killed_web_process_a_stopped_consumer_and_lost_redis_state(
    running_suite: RunningSuite, load_run: LoadRun
) -> None:
    assert len(load_run.accepted) == 2_000
    assert load_run.failures > 0, (
        "the web process was killed mid-run: some attempts should have failed and been retried"
    )
    indicators = running_suite.database("indicators")
    deadline = time.monotonic() + 60
    stored = _stored(indicators, load_run.session_ids)
    while len(stored) < len(load_run.accepted) and time.monotonic() < deadline:
        time.sleep(0.25)
        stored = _stored(indicators, load_run.session_ids)
    assert len(stored) == len(set(stored)) == 2_000, f"after {load_run.elapsed:.0f}s of load"
    assert set(stored) == load_run.accepted
    sessions = set(load_run.session_ids)
    published = {
        m.event_id
        for m in running_suite.tap.drain()
        if m.routing_key == "checkin.attendance_recorded.v1"
        and checkin_events.AttendanceRecorded.FromString(m.body).session_id in sessions
    }
    # Repeats after a lost Redis mark or a retried publish reuse the event id: one id per check-in, however often
    # it was published.
    assert len(published) == 2_000


def test_bulk_corrections_through_the_portal_reach_checkin_as_pseudonyms(
    running_suite: RunningSuite, load_run: LoadRun
) -> None:
    portal = running_suite.config.portal_url
    lecturer = sign_in(portal, "lecturer1")
    runs_page = lecturer.get(f"{portal}/attendance", timeout=10)
    assert runs_page.status_code == 200, runs_page.text
    session_id = load_run.session_ids[0]
    with psycopg.connect(running_suite.database("checkin")) as conn:
        [(module_run_id,)] = conn.execute(
            "SELECT module_run_id FROM teaching_sessions WHERE id = %s", (session_id,)
        ).fetchall()
    sessions_page = lecturer.get(f"{portal}/attendance/runs/{module_run_id}", timeout=10)
    path = f"/attendance/sessions/{session_id}?run={module_run_id}"
    assert html.escape(path) in sessions_page.text

    page = lecturer.get(f"{portal}{path}", timeout=10)
    assert page.status_code == 200, page.text
    pseudonyms = re.findall(r'name="mark-([^"]+)" value=""', page.text)
    numbers = re.findall(r"<td>([^<]+)</td>", page.text)
    assert len(pseudonyms) >= 10
    # The class list ticked in bulk: everyone present except the last two, marked absent.
    marks = {f"mark-{p}": "present" for p in pseudonyms[:-2]} | {f"mark-{p}": "absent" for p in pseudonyms[-2:]}
    ticked = lecturer.post(
        f"{portal}{path}",
        data={"csrf_token": form_value(page.text, "csrf_token"), "reason": "NO_DEVICE", **marks},
        timeout=30,
    )
    assert ticked.status_code == 200, ticked.text
    assert f"{len(pseudonyms)} corrections recorded" in ticked.text
    # And a list of student numbers, as a register taken on paper would give.
    listed = lecturer.post(
        f"{portal}{path}",
        data={
            "csrf_token": form_value(ticked.text, "csrf_token"),
            "reason": "REGISTER_TAKEN_OTHERWISE",
            "csv_kind": "student_number",
            "csv_text": "student_number\n" + "\n".join(numbers[:5]),
        },
        timeout=30,
    )
    assert listed.status_code == 200, listed.text
    assert "5 corrections recorded" in listed.text

    with psycopg.connect(running_suite.database("checkin")) as conn:
        rows = conn.execute(
            "SELECT student_pseudonym, present FROM attendance_corrections WHERE session_id = %s", (session_id,)
        ).fetchall()
    assert len(rows) == len(pseudonyms) + 5
    assert {str(p) for p, _present in rows} <= set(pseudonyms)
    audit = running_suite.database("audit")
    deadline = time.monotonic() + 30
    audited = 0
    while audited < len(rows) and time.monotonic() < deadline:
        with psycopg.connect(audit) as conn:
            audited = conn.execute(
                "SELECT count(*) FROM audit_log WHERE action = 'attendance.correct' AND origin_service = 'checkin'"
            ).fetchone()[0]  # type: ignore[index]
        time.sleep(0.2)
    assert audited == len(rows)


def test_privacy_canaries_after_the_load_run_and_bulk_corrections(
    running_suite: RunningSuite, load_run: LoadRun
) -> None:
    canaries = running_suite.canaries
    config = running_suite.config
    hits = find_in_database(running_suite.database("checkin"), canaries)
    hits += find_in_redis(config.redis_url, config.redis_prefix, canaries)
    for process in ("checkin", "checkin-web"):
        hits += find_in_text(running_suite.suite.logs(process), canaries, f"{process} log")
    published = [m.body for m in running_suite.tap.drain() if m.producer == "checkin"]
    assert len(published) >= len(load_run.accepted)
    hits += find_in_bytes(published, canaries, "message published by checkin")
    assert hits == []
