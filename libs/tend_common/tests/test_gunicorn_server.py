"""The shared gunicorn runner's configuration: threaded workers and no access log, not even one built and dropped."""

from __future__ import annotations

import pytest
from flask import Flask

from tend_common.gunicorn_server import GunicornServer, LoggerWithoutAccessLog, WebServerOptions


def _server() -> GunicornServer:
    options = WebServerOptions(
        name="test-web", bind="127.0.0.1:0", workers=1, threads=4, log_level="info", graceful_timeout=5
    )
    return GunicornServer(options, lambda: Flask(__name__), lambda _app: None)


def test_workers_are_threaded_with_the_given_counts() -> None:
    cfg = _server().cfg

    assert cfg.worker_class_str == "gthread"
    assert (cfg.workers, cfg.threads) == (1, 4)
    assert cfg.accesslog is None


def test_no_access_log_fields_are_built_for_a_request(monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = _server().cfg
    assert cfg.logger_class is LoggerWithoutAccessLog
    # Not set up: that would apply the logging configuration to this test process. With this configuration (a
    # logging config, no access log) gunicorn's own logger would count the access log as on and build its fields.
    logger = LoggerWithoutAccessLog.__new__(LoggerWithoutAccessLog)
    logger.cfg = cfg

    def fail(*_args: object) -> dict[str, object]:
        raise AssertionError("access log fields built")

    monkeypatch.setattr(logger, "atoms", fail)

    assert logger.access_log_enabled is False
    logger.access(object(), object(), {}, 0.0)
