"""Serves the check-in web app with gunicorn: threaded (gthread) workers, each building its own app after the fork
(gRPC channels, broker connections and database pools must not cross a fork)."""

from __future__ import annotations

import os
from typing import Any

from flask import Flask
from gunicorn.app.base import BaseApplication

from tend_checkin.settings import Settings, require_secret_key
from tend_checkin.web import close_app, create_app

# Seconds a worker may take to finish requests in flight after SIGTERM; a check-in waits for a broker confirm.
_GRACEFUL_TIMEOUT = 20
# gunicorn's workers touch a heartbeat file; in memory it is faster and works on a read-only root file system.
_MEMORY_DIR = "/dev/shm"  # noqa: S108 (gunicorn's heartbeat files only, never data)


def _json_logging(level: str) -> dict[str, Any]:
    """gunicorn's own records as the same one-line JSON objects as the app's."""
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"json": {"()": "tend_common.logging.JsonFormatter", "service": "checkin-web"}},
        "handlers": {"stderr": {"class": "logging.StreamHandler", "formatter": "json", "stream": "ext://sys.stderr"}},
        "root": {"level": level.upper(), "handlers": ["stderr"]},
        "loggers": {"gunicorn.error": {"level": level.upper(), "handlers": [], "propagate": True}},
    }


def _close_worker_app(_server: Any, worker: Any) -> None:
    app = getattr(worker, "wsgi", None)
    if isinstance(app, Flask):
        close_app(app)


class CheckinWebServer(BaseApplication):  # type: ignore[misc]  # gunicorn ships no type information
    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        super().__init__(prog="tend-checkin web")

    def load_config(self) -> None:
        settings = self._settings
        options: dict[str, Any] = {
            "bind": f"{settings.listen_host}:{settings.http_port}",
            "worker_class": "gthread",
            "workers": settings.web_workers,
            "threads": settings.web_threads,
            "preload_app": False,
            "graceful_timeout": _GRACEFUL_TIMEOUT,
            "timeout": 30,
            "proc_name": "tend-checkin-web",
            # No access log: it would record client addresses and the codes and nonces in query strings; the app's
            # own logs carry the identifiers operators need.
            "accesslog": None,
            "logconfig_dict": _json_logging(settings.log_level),
            "worker_exit": _close_worker_app,
            # gunicorn's control socket defaults to one path per user, which several servers on a host would share.
            "control_socket_disable": True,
        }
        if os.path.isdir(_MEMORY_DIR):
            options["worker_tmp_dir"] = _MEMORY_DIR
        for name, value in options.items():
            self.cfg.set(name, value)

    def load(self) -> Flask:
        return create_app(self._settings)


def serve_web(settings: Settings) -> None:
    """Runs gunicorn in this process until SIGTERM (graceful) or SIGINT."""
    require_secret_key(settings)  # fail in the master with a clear message, not in every worker
    CheckinWebServer(settings).run()
