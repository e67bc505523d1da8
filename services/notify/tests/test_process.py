"""Notify stands up as a real process: migrations, gRPC health, metrics, and a clean exit on SIGTERM."""

from __future__ import annotations

import sys
import urllib.request
from collections.abc import Callable
from pathlib import Path

import psycopg
import pytest

from tend_notify.settings import from_environment
from tend_testing.backends import Backends
from tend_testing.processes import ServiceProcess, free_port

pytestmark = pytest.mark.e2e


def test_serve_reports_healthy_and_stops_cleanly(
    backends: Backends, database_factory: Callable[[str | None], str], amqp_namespace: str, tmp_path: Path
) -> None:
    dsn = database_factory("tend_notify.migrations")
    grpc_port, metrics_port = free_port(), free_port()
    env = {
        "TEND_NOTIFY_DATABASE_URL": dsn,
        "TEND_NOTIFY_AMQP_URL": backends.amqp_url,
        "TEND_NOTIFY_AMQP_NAMESPACE": amqp_namespace,
        "TEND_NOTIFY_GRPC_PORT": str(grpc_port),
        "TEND_NOTIFY_METRICS_PORT": str(metrics_port),
    }
    process = ServiceProcess("notify", [sys.executable, "-m", "tend_notify", "serve"], env, tmp_path).start()
    try:
        process.wait_grpc(grpc_port)
        with urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=5) as response:
            assert b"python_info" in response.read()
    finally:
        assert process.terminate() == 0, process.read_log()
    with psycopg.connect(dsn) as conn:
        applied = [row[0] for row in conn.execute("SELECT name FROM schema_migrations")]
    assert applied == ["tend_common/0000_outbox_and_inbox.sql"]


def test_settings_default_to_the_standard_local_ports(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TEND_NOTIFY_GRPC_PORT", raising=False)
    settings = from_environment()
    assert (settings.grpc_port, settings.metrics_port) == (50054, 9104)
