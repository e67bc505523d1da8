"""Notify stands up as a real process: migrations, gRPC health, metrics, a clean exit on SIGTERM, and a clear error
when its service key is missing."""

from __future__ import annotations

import subprocess
import sys
import urllib.request
from collections.abc import Callable
from pathlib import Path

import psycopg
import pytest

from tend_common.service_auth import generate_service_key
from tend_testing.backends import Backends
from tend_testing.processes import ServiceProcess, free_port

pytestmark = pytest.mark.e2e


def test_serve_reports_healthy_and_stops_cleanly(
    backends: Backends,
    database_factory: Callable[[str | None], str],
    amqp_namespace: str,
    redis_prefix: str,
    tmp_path: Path,
) -> None:
    dsn = database_factory("tend_notify.migrations")
    grpc_port, metrics_port = free_port(), free_port()
    env = {
        "TEND_NOTIFY_DATABASE_URL": dsn,
        "TEND_NOTIFY_AMQP_URL": backends.amqp_url,
        "TEND_NOTIFY_AMQP_NAMESPACE": amqp_namespace,
        "TEND_NOTIFY_REDIS_URL": backends.redis_url,
        "TEND_NOTIFY_REDIS_PREFIX": redis_prefix,
        "TEND_NOTIFY_GRPC_PORT": str(grpc_port),
        "TEND_NOTIFY_METRICS_PORT": str(metrics_port),
        "TEND_NOTIFY_SERVICE_KEY": generate_service_key(),
        "TEND_NOTIFY_DELIVERY_MODE": "mailbox",
        "TEND_NOTIFY_MAILBOX_DIR": str(tmp_path / "mailbox"),
    }
    process = ServiceProcess("notify", [sys.executable, "-m", "tend_notify", "serve"], env, tmp_path).start()
    try:
        process.wait_grpc(grpc_port)
        with urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=5) as response:
            assert b"tend_notify_attempt_outcomes_total" in response.read()
    finally:
        assert process.terminate() == 0, process.read_log()
    with psycopg.connect(dsn) as conn:
        applied = [row[0] for row in conn.execute("SELECT name FROM schema_migrations ORDER BY name")]
    assert applied == ["0001_notify.sql", "0002_follow_up_stops.sql", "tend_common/0000_outbox_and_inbox.sql"]


def test_serve_without_a_service_key_says_how_to_make_one() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "tend_notify", "serve"],
        env={"PATH": "/usr/bin:/bin", "TEND_NOTIFY_SERVICE_KEY": ""},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    assert "TEND_NOTIFY_SERVICE_KEY is not set" in result.stderr
    assert "generate_service_key" in result.stderr
