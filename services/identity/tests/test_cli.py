"""The tend-identity command as an operator runs it: migrate an empty database, load the demo twice, serve, stop."""

from __future__ import annotations

import base64
import os
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path

import grpc
import pika
import psycopg
import pytest
from tend.identity.v1 import identity_pb2, identity_pb2_grpc

from tend_common.messaging.topology import Topology, declare_consumer_queue
from tend_identity import demo
from tend_identity.audit_events import ROUTING_KEY
from tend_testing.backends import Backends
from tend_testing.processes import ServiceProcess, free_port

pytestmark = pytest.mark.e2e


@pytest.fixture
def empty_dsn(backends: Backends) -> Iterator[str]:
    name = f"t_cli_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(backends.postgres_admin_dsn, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    yield backends.postgres_admin_dsn.rsplit("/", 1)[0] + f"/{name}"
    with psycopg.connect(backends.postgres_admin_dsn, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _cli(env: dict[str, str], *args: str) -> str:
    result = subprocess.run(
        [sys.executable, "-m", "tend_identity", *args],
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_migrate_load_demo_serve_and_stop(
    empty_dsn: str, backends: Backends, amqp_namespace: str, tmp_path: Path
) -> None:
    grpc_port, metrics_port = free_port(), free_port()
    env = {
        "PATH": "/usr/bin:/bin",
        "TEND_IDENTITY_DATABASE_URL": empty_dsn,
        "TEND_IDENTITY_AMQP_URL": backends.amqp_url,
        "TEND_IDENTITY_AMQP_NAMESPACE": amqp_namespace,
        "TEND_IDENTITY_GRPC_PORT": str(grpc_port),
        "TEND_IDENTITY_METRICS_PORT": str(metrics_port),
        # As in production: the signing keys and pseudonym secrets are stored wrapped with it.
        "TEND_IDENTITY_KEY_ENCRYPTION_KEY": base64.b64encode(os.urandom(32)).decode(),
    }
    assert "0001_identity.sql" in _cli(env, "migrate")
    assert "applied 0 migration(s)" in _cli(env, "migrate")
    first = _cli(env, "load-demo")
    assert _cli(env, "load-demo") == first
    assert "tend-demo" in first
    assert "student001" in first

    topology = Topology(amqp_namespace)
    queue = topology.queue("audit", "records")
    connection = pika.BlockingConnection(pika.URLParameters(backends.amqp_url))
    declare_consumer_queue(connection.channel(), topology, queue, [ROUTING_KEY])

    identity = ServiceProcess("identity", [sys.executable, "-m", "tend_identity", "serve"], env, tmp_path).start()
    try:
        identity.wait_grpc(grpc_port)
        with grpc.insecure_channel(f"127.0.0.1:{grpc_port}") as channel:
            stub = identity_pb2_grpc.IdentityServiceStub(channel)
            signed_in = stub.SignIn(identity_pb2.SignInRequest(username="lecturer1", password=demo.DEMO_PASSWORD))
            session = stub.GetSession(
                identity_pb2.GetSessionRequest(session_token=signed_in.session_token, audiences=["portal"])
            )
            decision = stub.CheckAccess(
                identity_pb2.CheckAccessRequest(
                    actor_assertion=session.assertions["portal"],
                    action="teaching_session.open",
                    resource=identity_pb2.Resource(kind="module_run", id=str(demo.demo_id("module_run", "CS101"))),
                )
            )
            assert decision.allowed
        with urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=5) as response:
            assert b'tend_identity_sign_ins_total{outcome="signed_in"} 1.0' in response.read()

        channel = connection.channel()
        deadline = time.monotonic() + 10
        method = None
        while method is None and time.monotonic() < deadline:
            method, _properties, _body = channel.basic_get(queue, auto_ack=True)
            if method is None:
                time.sleep(0.1)
        assert method is not None, "the audit event was not relayed"
    finally:
        exit_code = identity.terminate()
        connection.close()

    assert exit_code == 0
    log = identity.read_log()
    assert '"message": "service stopped"' in log
    with psycopg.connect(empty_dsn) as conn:
        canaries = demo.demo_canaries(conn)
    assert canaries
    assert not [canary for canary in canaries if canary in log]
