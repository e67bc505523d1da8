"""Prometheus metrics: an HTTP endpoint per process, and a Flask view for web processes."""

from __future__ import annotations

import os

from flask import Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest, multiprocess, start_http_server


def start_metrics_endpoint(port: int, host: str = "127.0.0.1") -> None:
    """Serves /metrics for a long-running non-web process (gRPC servers and consumers). Port 0 disables it."""
    if port:
        start_http_server(port, addr=host)


def metrics_response() -> Response:
    """The /metrics view for a web process, aggregating gunicorn workers when PROMETHEUS_MULTIPROC_DIR is set."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        body = generate_latest(registry)
    else:
        body = generate_latest()
    return Response(body, mimetype=CONTENT_TYPE_LATEST)
