"""Serves the ingest web app with gunicorn: threaded (gthread) workers, each building its own app after the fork."""

from __future__ import annotations

import os
from typing import Any

from flask import Flask
from gunicorn.app.base import BaseApplication

from tend_indicators.settings import Settings, require_service_key, require_source_credentials
from tend_indicators.web import close_app, create_app

# Seconds a worker may take to finish requests in flight after SIGTERM: a large batch is one transaction.
_GRACEFUL_TIMEOUT = 30
# gunicorn's workers touch a heartbeat file; in memory it is faster and works on a read-only root file system.
_MEMORY_DIR = "/dev/shm"  # noqa: S108 (gunicorn's heartbeat files only, never data)


def _json_logging(level: str) -> dict[str, Any]:
    """gunicorn's own records as the same one-line JSON objects as the app's."""
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"json": {"()": "tend_common.logging.JsonFormatter", "service": "indicators-web"}},
        "handlers": {"stderr": {"class": "logging.StreamHandler", "formatter": "json", "stream": "ext://sys.stderr"}},
        "root": {"level": level.upper(), "handlers": ["stderr"]},
        "loggers": {"gunicorn.error": {"level": level.upper(), "handlers": [], "propagate": True}},
    }


def _close_worker_app(_server: Any, worker: Any) -> None:
    app = getattr(worker, "wsgi", None)
    if isinstance(app, Flask):
        close_app(app)


class IndicatorsWebServer(BaseApplication):  # type: ignore[misc]  # gunicorn ships no type information
    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        super().__init__(prog="tend-indicators web")

    def load_config(self) -> None:
        settings = self._settings
        options: dict[str, Any] = {
            "bind": f"{settings.listen_host}:{settings.http_port}",
            "worker_class": "gthread",
            "workers": settings.web_workers,
            "threads": settings.web_threads,
            "preload_app": False,
            "graceful_timeout": _GRACEFUL_TIMEOUT,
            # A batch of thousands of statements is mapped through identity and stored in one transaction.
            "timeout": 120,
            "proc_name": "tend-indicators-web",
            # No access log: query strings and client addresses are not the operators' business here.
            "accesslog": None,
            "logconfig_dict": _json_logging(settings.log_level),
            "worker_exit": _close_worker_app,
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
    require_source_credentials(settings)
    require_service_key(settings)
    IndicatorsWebServer(settings).run()
