"""Serves a Flask app with gunicorn in this process: threaded (gthread) workers, each building its own app after
the fork (gRPC channels, broker connections and database pools must not cross a fork), JSON logs, no access log."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from flask import Flask
from gunicorn.app.base import BaseApplication
from gunicorn.glogging import Logger

# gunicorn's workers touch a heartbeat file; in memory it is faster and works on a read-only root file system.
_MEMORY_DIR = "/dev/shm"  # noqa: S108 (gunicorn's heartbeat files only, never data)


@dataclass(frozen=True)
class WebServerOptions:
    """What differs between Tend's web processes."""

    name: str  # for logs and the process title, e.g. "checkin-web"
    bind: str
    workers: int
    threads: int
    log_level: str
    # Seconds a worker may take to finish requests in flight after SIGTERM.
    graceful_timeout: int
    # Seconds a request may take before its worker is restarted.
    request_timeout: int = 30


def _json_logging(service: str, level: str) -> dict[str, Any]:
    """gunicorn's own records as the same one-line JSON objects as the app's."""
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"json": {"()": "tend_common.logging.JsonFormatter", "service": service}},
        "handlers": {"stderr": {"class": "logging.StreamHandler", "formatter": "json", "stream": "ext://sys.stderr"}},
        "root": {"level": level.upper(), "handlers": ["stderr"]},
        "loggers": {"gunicorn.error": {"level": level.upper(), "handlers": [], "propagate": True}},
    }


class LoggerWithoutAccessLog(Logger):  # type: ignore[misc]  # gunicorn ships no type information
    """gunicorn's logger with the access log off for good. Given a logging configuration, gunicorn counts its access
    log as on and builds every request's log fields (each header and environ entry, a formatted time) and a log record
    that no handler writes: several percent of a small request's CPU."""

    @property
    def access_log_enabled(self) -> bool:
        return False

    def access(self, resp: Any, req: Any, environ: Any, request_time: Any) -> None:
        return None


class GunicornServer(BaseApplication):  # type: ignore[misc]  # gunicorn ships no type information
    def __init__(
        self, options: WebServerOptions, build_app: Callable[[], Flask], close_app: Callable[[Flask], None]
    ) -> None:
        self._options = options
        self._build_app = build_app
        self._close_app = close_app
        super().__init__(prog=f"tend-{options.name}")

    def _close_worker_app(self, _server: Any, worker: Any) -> None:
        app = getattr(worker, "wsgi", None)
        if isinstance(app, Flask):
            self._close_app(app)

    def load_config(self) -> None:
        options = self._options
        config: dict[str, Any] = {
            "bind": options.bind,
            "worker_class": "gthread",
            "workers": options.workers,
            "threads": options.threads,
            "preload_app": False,
            "graceful_timeout": options.graceful_timeout,
            "timeout": options.request_timeout,
            "proc_name": f"tend-{options.name}",
            # No access log: it would record client addresses and query strings (codes, nonces); the app's own logs
            # carry the identifiers operators need.
            "accesslog": None,
            "logger_class": LoggerWithoutAccessLog,
            "logconfig_dict": _json_logging(options.name, options.log_level),
            "worker_exit": self._close_worker_app,
            # gunicorn's control socket defaults to one path per user, which several servers on a host would share.
            "control_socket_disable": True,
        }
        if os.path.isdir(_MEMORY_DIR):
            config["worker_tmp_dir"] = _MEMORY_DIR
        for name, value in config.items():
            self.cfg.set(name, value)

    def load(self) -> Flask:
        return self._build_app()
