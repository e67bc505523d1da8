"""The console script's commands as real processes: migrate, serve (gRPC and the outbox relay) and web (gunicorn),
each stopped by SIGTERM as an orchestrator would."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import grpc
import pika
import pytest
import requests
from tend.audit.v1 import events_pb2 as audit_events_pb2
from tend.checkin.v1 import checkin_pb2, checkin_pb2_grpc

from tend_checkin.settings import Settings
from tend_common.messaging.topology import Topology, declare_consumer_queue
from tend_testing.fake_identity import FakeIdentity
from tend_testing.processes import ServiceProcess, free_port

SCRIPT = str(Path(sys.executable).with_name("tend-checkin"))
STAFF = "3c9e8f0a-2b1d-4e6f-8a7b-9c0d1e2f3a4b"
MODULE_RUN = "run-2026-cs101"


def environment(settings: Settings, grpc_port: int, http_port: int) -> dict[str, str]:
    return {
        "TEND_CHECKIN_DATABASE_URL": settings.database_url,
        "TEND_CHECKIN_AMQP_URL": settings.amqp_url,
        "TEND_CHECKIN_AMQP_NAMESPACE": settings.amqp_namespace,
        "TEND_CHECKIN_REDIS_URL": settings.redis_url,
        "TEND_CHECKIN_REDIS_PREFIX": settings.redis_prefix,
        "TEND_CHECKIN_IDENTITY_TARGET": settings.identity_target,
        "TEND_CHECKIN_GRPC_PORT": str(grpc_port),
        "TEND_CHECKIN_HTTP_PORT": str(http_port),
        "TEND_CHECKIN_METRICS_PORT": "0",
        "TEND_CHECKIN_SECRET_KEY": settings.secret_key,
        "TEND_CHECKIN_WEB_WORKERS": "1",
        "TEND_CHECKIN_WEB_THREADS": "2",
    }


def next_message(channel: pika.adapters.blocking_connection.BlockingChannel, queue: str) -> bytes:
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        method, _properties, body = channel.basic_get(queue, auto_ack=True)
        if method is not None:
            return bytes(body)
        time.sleep(0.05)
    raise AssertionError(f"nothing arrived on {queue}")


@pytest.mark.e2e
def test_commands_serve_relay_and_stop_gracefully(
    checkin_settings: Settings, fake_identity: FakeIdentity, tmp_path: Path
) -> None:
    grpc_port, http_port = free_port(), free_port()
    env = environment(checkin_settings, grpc_port, http_port)
    topology = Topology(checkin_settings.amqp_namespace)
    connection = pika.BlockingConnection(pika.URLParameters(checkin_settings.amqp_url))
    channel = connection.channel()
    audit_queue = topology.queue("test", "audit")
    declare_consumer_queue(channel, topology, audit_queue, ["audit.recorded.v1"])
    fake_identity.allow(STAFF, "teaching_session.open", "module_run", MODULE_RUN)

    migrated = subprocess.run(
        [SCRIPT, "migrate"], env={**os.environ, **env}, capture_output=True, text=True, check=False, timeout=60
    )
    assert migrated.returncode == 0, migrated.stderr

    serve = ServiceProcess("checkin-serve", [SCRIPT, "serve"], env, tmp_path).start()
    web = ServiceProcess("checkin-web", [SCRIPT, "web"], env, tmp_path).start()
    try:
        serve.wait_grpc(grpc_port)
        web.wait_http(http_port, "/readyz")
        with grpc.insecure_channel(f"127.0.0.1:{grpc_port}") as grpc_channel:
            session = (
                checkin_pb2_grpc.CheckinServiceStub(grpc_channel)
                .OpenSession(
                    checkin_pb2.OpenSessionRequest(
                        actor_assertion=fake_identity.assertion(STAFF), module_run_id=MODULE_RUN, room="LT1"
                    )
                )
                .session
            )
        # The audit event went into the outbox with the session and was relayed to the broker.
        audit = audit_events_pb2.AuditEvent.FromString(next_message(channel, audit_queue))
        assert (audit.subject.id, audit.actor.id) == (session.session_id, STAFF)
        # The student pages answer from the same database: without a check-in token, off to the portal.
        page = requests.get(f"http://127.0.0.1:{http_port}/c/{session.session_id}", allow_redirects=False, timeout=5)
        assert page.status_code == 303
        assert page.headers["Location"].startswith("http://127.0.0.1:8000/checkin-token?")
    finally:
        serve_exit = serve.terminate()
        web_exit = web.terminate()
        connection.close()
    assert serve_exit == 0, serve.read_log()[-2000:]
    assert web_exit == 0, web.read_log()[-2000:]


def test_web_refuses_to_start_without_a_secret_key() -> None:
    env = {**os.environ, "TEND_CHECKIN_SECRET_KEY": "", "TEND_CHECKIN_HTTP_PORT": str(free_port())}
    result = subprocess.run([SCRIPT, "web"], env=env, capture_output=True, text=True, check=False, timeout=60)
    assert result.returncode == 2
    assert "TEND_CHECKIN_SECRET_KEY is not set" in result.stderr
