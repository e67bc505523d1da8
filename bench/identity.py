"""Access decisions over gRPC against a real identity process holding the demo university (`make bench`).

A mix of the questions services ask: may this lecturer open a session of this module run, may this tutor (or this
faculty role) see this student for engagement support, may this lecturer change this module. Every decision is
audited through the outbox as in production, and the outbox relay publishes to a queue bound for the run.

Figures (medians over runs): decisions per second in a closed loop (8 callers), and the p99 latency in an open loop
paced at 1,000 decisions per second (and at 200 per second, a load the machine sustains even when shared), measured
from each call's scheduled time so that a stalled server is not hidden by a stalled load generator. A call that
times out counts with the time it took. Also the identity process's CPU time per decision in the closed loop (every
thread: gRPC, decisions, the audit group commit, the outbox relay), far less noisy than latency on a shared machine.
"""

from __future__ import annotations

import os
import statistics
import tempfile
import threading
import time
import uuid
from pathlib import Path

import grpc
import pika
import psycopg
from tend.identity.v1 import identity_pb2, identity_pb2_grpc

from bench.environment import BenchEnvironment
from tend_common.messaging.topology import Topology, declare_consumer_queue
from tend_testing.flows import DEMO_PASSWORD
from tend_testing.namespaces import new_amqp_namespace
from tend_testing.suite import BACK_END_SERVICES, Suite, SuiteConfig, SuitePorts, run_command

RUNS = 3
CLOSED_LOOP_SECONDS = 3.0
CLOSED_LOOP_CALLERS = 8
OPEN_LOOP_RATE = 1000
# A rate this machine sustains even when shared, to show the latency of a decision when nothing queues.
LIGHT_RATE = 200
OPEN_LOOP_SECONDS = 3.0
AUDIT_ROUTING_KEY = "audit.recorded.v1"


def _assertion(identity: identity_pb2_grpc.IdentityServiceStub, username: str) -> str:
    signed_in = identity.SignIn(identity_pb2.SignInRequest(username=username, password=DEMO_PASSWORD))
    session = identity.GetSession(
        # The bench calls as the portal, and identity accepts from the portal only assertions issued for identity.
        identity_pb2.GetSessionRequest(session_token=signed_in.session_token, audiences=["identity"])
    )
    return str(session.assertions["identity"])


def _requests(identity: identity_pb2_grpc.IdentityServiceStub, dsn: str) -> list[identity_pb2.CheckAccessRequest]:
    with psycopg.connect(dsn) as conn:
        run = conn.execute(
            "SELECT mr.id::text FROM module_runs mr JOIN modules m ON m.id = mr.module_id WHERE m.code = 'CS101'"
        ).fetchone()
        module = conn.execute("SELECT id::text FROM modules WHERE code = 'MA101'").fetchone()
        students = conn.execute(
            "SELECT p.id::text FROM people p WHERE p.kind = 'student' ORDER BY p.username LIMIT 20"
        ).fetchall()
    assert run
    assert module
    assert students
    lecturer, tutor, pvc = (_assertion(identity, name) for name in ("lecturer1", "tutor1", "pvc1"))
    support = identity_pb2.PURPOSE_ENGAGEMENT_SUPPORT
    found: list[identity_pb2.CheckAccessRequest] = []
    for (student,) in students:
        found += [
            identity_pb2.CheckAccessRequest(
                actor_assertion=lecturer,
                action="teaching_session.open",
                resource=identity_pb2.Resource(kind="module_run", id=run[0]),
            ),
            identity_pb2.CheckAccessRequest(
                actor_assertion=tutor,
                action="student.view",
                resource=identity_pb2.Resource(kind="student", id=student),
                data_purpose=support,
            ),
            identity_pb2.CheckAccessRequest(
                actor_assertion=pvc,
                action="student.view",
                resource=identity_pb2.Resource(kind="student", id=student),
                data_purpose=support,
            ),
            identity_pb2.CheckAccessRequest(
                actor_assertion=lecturer,
                action="module.update",
                resource=identity_pb2.Resource(kind="module", id=module[0]),
            ),
        ]
    return found


def _identity_pid(grpc_port: int) -> int:
    """The identity process serving on `grpc_port`, found by its environment."""
    marker = f"TEND_IDENTITY_GRPC_PORT={grpc_port}".encode()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            environ = (entry / "environ").read_bytes().split(b"\0")
            command = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if marker in environ and b"serve" in command:
            return int(entry.name)
    raise RuntimeError("identity process not found")


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _closed_loop(
    stub: identity_pb2_grpc.IdentityServiceStub, requests: list[identity_pb2.CheckAccessRequest], pid: int
) -> tuple[float, float]:
    """Decisions per second, and the identity process's CPU milliseconds per decision."""
    counts = [0] * CLOSED_LOOP_CALLERS
    deadline = time.perf_counter() + CLOSED_LOOP_SECONDS

    def caller(index: int) -> None:
        n = index
        while time.perf_counter() < deadline:
            stub.CheckAccess(requests[n % len(requests)], timeout=10)
            n += 1
            counts[index] += 1

    started, cpu_before = time.perf_counter(), _cpu_seconds(pid)
    threads = [threading.Thread(target=caller, args=(i,)) for i in range(CLOSED_LOOP_CALLERS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed, cpu = time.perf_counter() - started, _cpu_seconds(pid) - cpu_before
    return sum(counts) / elapsed, cpu * 1000 / max(1, sum(counts))


def _open_loop_p99_ms(
    stub: identity_pb2_grpc.IdentityServiceStub, requests: list[identity_pb2.CheckAccessRequest], rate: int
) -> float:
    total = int(rate * OPEN_LOOP_SECONDS)
    interval = 1.0 / rate
    latencies: list[float] = []
    failures: list[BaseException] = []
    done = threading.Semaphore(0)
    lock = threading.Lock()

    def finished(scheduled: float) -> object:
        def record(future: grpc.Future) -> None:
            took = time.perf_counter() - scheduled
            with lock:
                if future.exception() is not None:
                    failures.append(future.exception())
                latencies.append(took)
            done.release()

        return record

    start = time.perf_counter()
    for n in range(total):
        scheduled = start + n * interval
        pause = scheduled - time.perf_counter()
        if pause > 0:
            time.sleep(pause)
        future = stub.CheckAccess.future(requests[n % len(requests)], timeout=10)
        future.add_done_callback(finished(scheduled))
    for _ in range(total):
        done.acquire(timeout=30)
    if failures:
        # An overloaded server times calls out; they count with the time they took, which is what a caller saw.
        print(f"  {len(failures)} of {total} decisions failed at {rate}/s ({type(failures[0]).__name__})")
    latencies.sort()
    return latencies[int(len(latencies) * 0.99) - 1] * 1000


def run(environment: BenchEnvironment) -> dict[str, float]:
    config = SuiteConfig(
        ports=SuitePorts.free(),
        databases={service: environment.database(f"tend_{service}.migrations") for service in BACK_END_SERVICES},
        amqp_url=environment.backends.amqp_url,
        amqp_namespace=new_amqp_namespace(),
        redis_url=environment.backends.redis_url,
        redis_prefix=f"bench:{uuid.uuid4().hex[:12]}:identity:",
    )
    topology = Topology(config.amqp_namespace)
    audit_queue = topology.queue("audit", "records")
    connection = pika.BlockingConnection(pika.URLParameters(config.amqp_url))
    declare_consumer_queue(connection.channel(), topology, audit_queue, [AUDIT_ROUTING_KEY])
    connection.close()
    run_command(config, "identity", "load-demo")
    suite = Suite(config, Path(tempfile.mkdtemp(prefix="bench-identity-")))
    rates: list[float] = []
    cpu_ms: list[float] = []
    p99s: list[float] = []
    light_p99s: list[float] = []
    try:
        suite.start_process("identity")
        with config.channel_as("portal", "identity") as channel:
            stub = identity_pb2_grpc.IdentityServiceStub(channel)
            requests = _requests(stub, config.databases["identity"])
            for request in requests:  # warm: connections, caches
                stub.CheckAccess(request, timeout=10)
            pid = _identity_pid(config.ports.grpc("identity"))
            for run_number in range(1, RUNS + 1):
                rate, cpu = _closed_loop(stub, requests, pid)
                rates.append(rate)
                cpu_ms.append(cpu)
                light_p99s.append(_open_loop_p99_ms(stub, requests, LIGHT_RATE))
                p99s.append(_open_loop_p99_ms(stub, requests, OPEN_LOOP_RATE))
                print(
                    f"  run {run_number}: decisions_per_s={rates[-1]:,.0f}, cpu_ms_per_decision={cpu_ms[-1]:.3f},"
                    f" p99_ms_at_{LIGHT_RATE}={light_p99s[-1]:.2f}, p99_ms_at_{OPEN_LOOP_RATE}={p99s[-1]:.2f}"
                )
    finally:
        suite.stop()
        connection = pika.BlockingConnection(pika.URLParameters(config.amqp_url))
        channel = connection.channel()
        channel.queue_delete(audit_queue)
        channel.queue_delete(topology.dead_letter_queue(audit_queue))
        channel.exchange_delete(topology.events_exchange)
        channel.exchange_delete(topology.dead_letter_exchange)
        connection.close()
    return {
        "identity.decisions_per_s": statistics.median(rates),
        "identity.decision_cpu_ms": statistics.median(cpu_ms),
        "identity.decision_p99_ms": statistics.median(p99s),
        f"identity.decision_p99_ms_at_{LIGHT_RATE}": statistics.median(light_p99s),
    }
