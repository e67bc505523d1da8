"""The lecture-start peak (`make bench-checkin`): 10,000 check-ins in 200 sessions, with wrong and repeated codes
mixed in, against real processes (identity, audit, indicators, checkin's gRPC and web processes) started here.

Students are signed in once through identity's gRPC before the timed part (the demo university's 200 students, each
attending 50 of the 200 sessions, so every (session, student) pair is new), and each phone opens the check-in form
once (cookies, CSRF token) as a phone that scanned the code would have. Timed: the presses of "Check in".

Figures (medians over runs): confirmed check-ins per second and p50/p95/p99 latency in a closed loop; p99 in an
open loop at 1,000 per second; a trivial Flask endpoint on the same gunicorn settings in the same run, and the ratio;
the web servers' CPU time per request (from /proc, for both, and its ratio: steadier than rates on a shared machine);
and, after indicators drained its queue, accepted check-ins missing from indicators (lost) and pairs recorded twice.
"""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import json
import os
import random
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pika
import psycopg
import redis
from tend.checkin.v1 import checkin_pb2, checkin_pb2_grpc
from tend.identity.v1 import identity_pb2, identity_pb2_grpc

from bench.checkin_load import (
    TOKEN_COOKIE,
    Attempt,
    Phone,
    RunResult,
    closed_loop,
    open_loop,
    percentile,
    prepare_phones,
    trivial_closed_loop,
)
from bench.environment import BenchEnvironment
from tend_checkin.settings import Settings as CheckinSettings
from tend_common.db import apply_migrations
from tend_common.messaging.topology import Topology
from tend_testing.flows import DEMO_PASSWORD
from tend_testing.namespaces import new_amqp_namespace
from tend_testing.processes import ServiceProcess, free_port
from tend_testing.suite import BACK_END_SERVICES, Suite, SuiteConfig, SuitePorts, run_command

RUNS = 3
SESSIONS = 200
PER_SESSION = 50
STUDENTS = 200
WRONG_SHARE = 0.05
REPEAT_SHARE = 0.05
CONCURRENCY = 64
OPEN_LOOP_RATE = 1_000
TRIVIAL_REQUESTS = 10_000
# Indicators consumes while the check-ins arrive and catches up afterwards; lost counts only what never arrives.
DRAIN_SECONDS = 300.0
QUIET_SECONDS = 5.0
PROCESSES = ("identity", "audit", "indicators", "checkin", "checkin-web")


def _pseudonym(token: str) -> str:
    payload = token.split(".")[1]
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    return str(claims["sub"])


def _phones(identity: identity_pb2_grpc.IdentityServiceStub) -> list[Phone]:
    def sign_in(n: int) -> Phone:
        signed = identity.SignIn(identity_pb2.SignInRequest(username=f"student{n:03d}", password=DEMO_PASSWORD))
        token = identity.IssueCheckinToken(identity_pb2.IssueCheckinTokenRequest(session_token=signed.session_token))
        return Phone(_pseudonym(token.token), {TOKEN_COOKIE: token.token})

    with ThreadPoolExecutor(max_workers=4) as pool:
        return list(pool.map(sign_in, range(1, STUDENTS + 1)))


class Lecturer:
    def __init__(self, identity: identity_pb2_grpc.IdentityServiceStub, checkin: checkin_pb2_grpc.CheckinServiceStub):
        self._identity = identity
        self._checkin = checkin
        signed = identity.SignIn(identity_pb2.SignInRequest(username="lecturer1", password=DEMO_PASSWORD))
        self._session_token = signed.session_token

    def open_sessions(self, count: int, label: str) -> list[str]:
        # One assertion per service it is shown to, as the portal does.
        assertions = self._identity.GetSession(
            identity_pb2.GetSessionRequest(session_token=self._session_token, audiences=["checkin", "identity"])
        ).assertions
        assertion = assertions["checkin"]
        runs = self._identity.ListTeachingModuleRuns(
            identity_pb2.ListTeachingModuleRunsRequest(actor_assertion=assertions["identity"])
        ).module_runs
        return [
            self._checkin.OpenSession(
                checkin_pb2.OpenSessionRequest(
                    actor_assertion=assertion,
                    module_run_id=runs[n % len(runs)].module_run_id,
                    room=f"Bench {label} room {n}",
                    duration_minutes=60,
                )
            ).session.session_id
            for n in range(count)
        ]


def _secrets(dsn: str, session_ids: Sequence[str]) -> dict[str, bytes]:
    with psycopg.connect(dsn) as conn:
        rows = conn.execute(
            "SELECT id::text, code_secret FROM teaching_sessions WHERE id = ANY(%s::uuid[])", (list(session_ids),)
        ).fetchall()
    return {str(row[0]): bytes(row[1]) for row in rows}


def _attempts(session_secrets: dict[str, bytes], phones: Sequence[Phone], rng: random.Random) -> list[Attempt]:
    """Every (session, student) pair once with the right code, some preceded by a wrong code, some repeated."""
    attempts: list[Attempt] = []
    for index, (session_id, secret) in enumerate(session_secrets.items()):
        for k in range(PER_SESSION):
            phone = phones[(index * PER_SESSION + k) % len(phones)]
            if rng.random() < WRONG_SHARE:
                attempts.append(Attempt(phone, session_id, code=f"{rng.randrange(10**6):06d}"))
            attempts.append(Attempt(phone, session_id, secret=secret))
            if rng.random() < REPEAT_SHARE:
                attempts.append(Attempt(phone, session_id, secret=secret))
    rng.shuffle(attempts)
    return attempts


def _accepted(result: RunResult) -> set[tuple[str, str]]:
    return {
        (o.attempt.session_id, o.attempt.phone.pseudonym)
        for o in result.outcomes
        if o.result in {"recorded", "already"}
    }


def _recorded_twice(result: RunResult) -> int:
    seen: dict[tuple[str, str], int] = {}
    for outcome in result.outcomes:
        if outcome.result == "recorded":
            key = (outcome.attempt.session_id, outcome.attempt.phone.pseudonym)
            seen[key] = seen.get(key, 0) + 1
    return sum(1 for count in seen.values() if count > 1)


def _stored(dsn: str, session_ids: Sequence[str]) -> list[tuple[str, str]]:
    with psycopg.connect(dsn) as conn:
        rows = conn.execute(
            "SELECT session_id::text, student_pseudonym FROM attendance WHERE session_id = ANY(%s::uuid[])",
            (list(session_ids),),
        ).fetchall()
    return [(str(a), str(b)) for a, b in rows]


def _queue_depth(config: SuiteConfig) -> int:
    """Messages waiting in indicators' attendance queue (ready, not yet delivered)."""
    connection = pika.BlockingConnection(pika.URLParameters(config.amqp_url))
    try:
        queue = Topology(config.amqp_namespace).queue("indicators", "attendance")
        return int(connection.channel().queue_declare(queue, passive=True).method.message_count)
    finally:
        connection.close()


def _drain(config: SuiteConfig, session_ids: Sequence[str], accepted: set[tuple[str, str]]) -> list[tuple[str, str]]:
    """Indicators' rows for the sessions once it has caught up: every accepted check-in stored, or its queue empty
    and nothing new stored for a few seconds (so "lost" counts only what will never arrive)."""
    dsn = config.databases["indicators"]
    deadline = time.monotonic() + DRAIN_SECONDS
    stored = _stored(dsn, session_ids)
    last_change = time.monotonic()
    while not accepted <= set(stored) and time.monotonic() < deadline:
        time.sleep(0.5)
        now_stored = _stored(dsn, session_ids)
        if len(now_stored) != len(stored):
            last_change = time.monotonic()
        stored = now_stored
        if _queue_depth(config) == 0 and time.monotonic() - last_change > QUIET_SECONDS:
            break
    return stored


def _processes(config: SuiteConfig) -> dict[str, list[int]]:
    """Pids of the suite's processes by role (gunicorn workers included), found by the ports in their environment."""
    markers = {
        "checkin-web": (f"TEND_CHECKIN_HTTP_PORT={config.ports.checkin_http}", True),
        "checkin": (f"TEND_CHECKIN_GRPC_PORT={config.ports.checkin_grpc}", False),
        "indicators": (f"TEND_INDICATORS_GRPC_PORT={config.ports.indicators_grpc}", False),
        "audit": (f"TEND_AUDIT_GRPC_PORT={config.ports.audit_grpc}", False),
    }
    found: dict[str, list[int]] = {role: [] for role in markers}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            environ = (entry / "environ").read_bytes().split(b"\0")
            is_web = b" web" in (entry / "cmdline").read_bytes().replace(b"\0", b" ")
        except OSError:
            continue
        for role, (marker, web) in markers.items():
            if marker.encode() in environ and is_web == web:
                found[role].append(int(entry.name))
                break
    return found


def _cpu_seconds(pids: Sequence[int]) -> float:
    """User and system CPU time of the processes so far (from /proc; a process that ended counts as zero)."""
    ticks = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        ticks += int(fields[11]) + int(fields[12])
    return ticks / os.sysconf("SC_CLK_TCK")


def _trivial_pids(port: int) -> list[int]:
    """The trivial server's gunicorn master and workers, found by their command line."""
    wanted = ["-m", "bench.trivial_server", str(port)]
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            arguments = (entry / "cmdline").read_bytes().decode(errors="replace").split("\0")
        except OSError:
            continue
        if any(arguments[n : n + 3] == wanted for n in range(len(arguments))):
            found.append(int(entry.name))
    return found


def _start_trivial(port: int, settings: CheckinSettings, log_dir: Path) -> ServiceProcess:
    command = [
        sys.executable,
        "-m",
        "bench.trivial_server",
        str(port),
        str(settings.web_workers),
        str(settings.web_threads),
    ]
    return ServiceProcess("trivial", command, {}, log_dir).start().wait_http(port)


def _one_run(
    suite: Suite, lecturer: Lecturer, phones: list[Phone], trivial_port: int, run_number: int
) -> dict[str, float]:
    config = suite.config
    rng = random.Random(run_number)
    closed_ids = lecturer.open_sessions(SESSIONS, f"{run_number}a")
    open_ids = lecturer.open_sessions(SESSIONS, f"{run_number}b")
    closed_attempts = _attempts(_secrets(config.databases["checkin"], closed_ids), phones, rng)
    open_attempts = [
        dataclasses.replace(attempt, at=n / OPEN_LOOP_RATE)
        for n, attempt in enumerate(_attempts(_secrets(config.databases["checkin"], open_ids), phones, rng))
    ]

    processes = _processes(config)
    cpu_before = {role: _cpu_seconds(pids) for role, pids in processes.items()}
    generator_before = time.process_time()
    closed = asyncio.run(closed_loop(config.checkin_url, closed_attempts, CONCURRENCY))
    cpu = {role: _cpu_seconds(pids) - cpu_before[role] for role, pids in processes.items()}
    cpu["load generator"] = time.process_time() - generator_before
    opened = asyncio.run(open_loop(config.checkin_url, open_attempts))
    trivial_pids = _trivial_pids(trivial_port)
    trivial_cpu_before = _cpu_seconds(trivial_pids)
    trivial_rate = asyncio.run(trivial_closed_loop(f"http://127.0.0.1:{trivial_port}", TRIVIAL_REQUESTS, CONCURRENCY))
    trivial_cpu_ms = 1000 * (_cpu_seconds(trivial_pids) - trivial_cpu_before) / TRIVIAL_REQUESTS

    accepted = _accepted(closed) | _accepted(opened)
    stored = _drain(config, closed_ids + open_ids, accepted)
    confirmed = [o for o in closed.outcomes if o.result in {"recorded", "already"}]
    latencies = [o.latency * 1000 for o in closed.outcomes]
    unexpected = [o for o in closed.outcomes + opened.outcomes if o.result not in {"recorded", "already", "wrong"}]
    if unexpected:
        example = unexpected[0]
        print(f"  run {run_number}: {len(unexpected)} unexpected answers, e.g. {example.status} {example.result}")
    confirmed_rate = len(confirmed) / closed.elapsed
    # Where the CPU went during the closed loop (RabbitMQ, PostgreSQL and Redis are shared and not counted).
    print(
        f"  run {run_number}: CPU ms per confirmed check-in, closed loop: "
        + ", ".join(f"{role} {1000 * seconds / len(confirmed):.2f}" for role, seconds in cpu.items())
        + f"; trivial endpoint {trivial_cpu_ms:.3f} per request"
    )
    web_cpu_ms = 1000 * cpu["checkin-web"] / len(confirmed)
    return {
        "checkin.confirmed_per_s": confirmed_rate,
        "checkin.p50_ms": percentile(latencies, 0.50),
        "checkin.p95_ms": percentile(latencies, 0.95),
        "checkin.p99_ms": percentile(latencies, 0.99),
        "checkin.p99_ms_at_1000": percentile([o.latency * 1000 for o in opened.outcomes], 0.99),
        "checkin.trivial_per_s": trivial_rate,
        "checkin.ratio_vs_trivial": confirmed_rate / trivial_rate,
        # CPU time per request of each web server, from /proc: far less noisy than rates on a shared machine.
        "checkin.web_cpu_ms": web_cpu_ms,
        "checkin.trivial_cpu_ms": trivial_cpu_ms,
        "checkin.cpu_ratio_vs_trivial": trivial_cpu_ms / web_cpu_ms,
        "checkin.lost": float(len(accepted - set(stored))),
        "checkin.duplicated": float(_recorded_twice(closed) + _recorded_twice(opened) + len(stored) - len(set(stored))),
    }


def _clean_up(config: SuiteConfig) -> None:
    topology = Topology(config.amqp_namespace)
    queues = [
        topology.queue("indicators", "attendance"),
        topology.queue("indicators", "attendance_withdrawn"),
        topology.queue("audit", "records"),
    ]
    connection = pika.BlockingConnection(pika.URLParameters(config.amqp_url))
    channel = connection.channel()
    for queue in queues:
        channel.queue_delete(queue)
        channel.queue_delete(topology.dead_letter_queue(queue))
    channel.exchange_delete(topology.events_exchange)
    channel.exchange_delete(topology.dead_letter_exchange)
    connection.close()
    client = redis.Redis.from_url(config.redis_url)
    keys = list(client.scan_iter(match=f"{config.redis_prefix}*", count=1000))
    for start in range(0, len(keys), 1000):
        client.delete(*keys[start : start + 1000])
    client.close()


def _database(environment: BenchEnvironment, migrations_package: str) -> str:
    """A fresh database of this benchmark's own: other benchmarks' clean-up drops every database named bench_*,
    which must not happen to this one while its processes run."""
    name = f"checkin_bench_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(environment.backends.postgres_admin_dsn, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    dsn = environment.backends.postgres_admin_dsn.rsplit("/", 1)[0] + f"/{name}"
    apply_migrations(dsn, migrations_package)
    return dsn


def _drop_databases(environment: BenchEnvironment, config: SuiteConfig) -> None:
    with psycopg.connect(environment.backends.postgres_admin_dsn, autocommit=True) as conn:
        for dsn in config.databases.values():
            conn.execute(f'DROP DATABASE IF EXISTS "{dsn.rsplit("/", 1)[1]}" WITH (FORCE)')


def run(environment: BenchEnvironment) -> dict[str, float]:
    config = SuiteConfig(
        ports=SuitePorts.free(),
        databases={service: _database(environment, f"tend_{service}.migrations") for service in BACK_END_SERVICES},
        amqp_url=environment.backends.amqp_url,
        amqp_namespace=new_amqp_namespace(),
        redis_url=environment.backends.redis_url,
        redis_prefix=f"bench:{uuid.uuid4().hex[:12]}:checkin:",
    )
    run_command(config, "identity", "load-demo")
    log_dir = Path(tempfile.mkdtemp(prefix="bench-checkin-"))
    suite = Suite(config, log_dir)
    trivial: ServiceProcess | None = None
    figures: list[dict[str, float]] = []
    try:
        for name in PROCESSES:
            suite.start_process(name)
        trivial_port = free_port()
        trivial = _start_trivial(trivial_port, CheckinSettings(), log_dir)
        identity = identity_pb2_grpc.IdentityServiceStub(config.channel_as("portal", "identity"))
        checkin = checkin_pb2_grpc.CheckinServiceStub(config.channel_as("portal", "checkin"))
        lecturer = Lecturer(identity, checkin)
        phones = _phones(identity)
        asyncio.run(prepare_phones(config.checkin_url, lecturer.open_sessions(1, "form")[0], phones))
        for run_number in range(1, RUNS + 1):
            figures.append(_one_run(suite, lecturer, phones, trivial_port, run_number))
            print(f"  run {run_number}: " + ", ".join(f"{k.split('.', 1)[1]}={v:,.1f}" for k, v in figures[-1].items()))
    finally:
        if trivial is not None:
            trivial.terminate()
        suite.stop()
        _clean_up(config)
        _drop_databases(environment, config)
    medians = {name: statistics.median(f[name] for f in figures) for name in figures[0]}
    # Lost and duplicated are totals over every run: a single one anywhere matters.
    medians["checkin.lost"] = sum(f["checkin.lost"] for f in figures)
    medians["checkin.duplicated"] = sum(f["checkin.duplicated"] for f in figures)
    return medians
