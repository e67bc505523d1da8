"""gunicorn, run in-process, serving the portal app with threaded (gthread) workers."""

from __future__ import annotations

import os
from typing import Any

from gunicorn.app.base import BaseApplication

from tend_portal.settings import Settings

# gunicorn's workers touch a heartbeat file; only gunicorn's own files go here.
_MEMORY_DIR = "/dev/shm"  # noqa: S108 (shared memory for gunicorn heartbeats, not for data)


def _json_logging(level: str) -> dict[str, Any]:
    """gunicorn's own records as the same one-line JSON objects as the portal's."""
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"json": {"()": "tend_common.logging.JsonFormatter", "service": "portal"}},
        "handlers": {"stderr": {"class": "logging.StreamHandler", "formatter": "json", "stream": "ext://sys.stderr"}},
        "root": {"level": level.upper(), "handlers": ["stderr"]},
        "loggers": {
            "gunicorn.error": {"level": level.upper(), "handlers": [], "propagate": True},
            "gunicorn.access": {"level": level.upper(), "handlers": [], "propagate": True},
        },
    }


def _close_worker_channels(_server: Any, worker: Any) -> None:
    """gunicorn's worker_exit hook, run in the worker as it stops: closes the app's gRPC channels."""
    from tend_portal.channels import close_channels

    app = getattr(worker, "wsgi", None)
    if app is not None:
        close_channels(app)


class PortalServer(BaseApplication):  # type: ignore[misc]  # gunicorn ships no type hints
    """Each worker builds its own app after the fork: gRPC channels must not be shared across a fork."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        super().__init__()

    def load_config(self) -> None:
        settings = self._settings
        options: dict[str, Any] = {
            "bind": f"{settings.http_host}:{settings.http_port}",
            "worker_class": "gthread",
            "workers": settings.web_workers,
            "threads": settings.web_threads,
            "preload_app": False,
            "graceful_timeout": 10,
            "timeout": 30,
            # Method, path, status, size and time only: no client address and no query string (which can carry a
            # check-in hand-off's state nonce).
            "access_log_format": '"%(m)s %(U)s" %(s)s %(B)s %(M)sms',
            # The control socket defaults to one path per user ($HOME/.gunicorn), which two web processes on a host
            # would fight over; the portal is managed by signals alone.
            "control_socket_disable": True,
            "logconfig_dict": _json_logging(settings.log_level),
            "worker_exit": _close_worker_channels,
        }
        # Heartbeat files in memory: faster, and works on a read-only root file system.
        if os.path.isdir(_MEMORY_DIR):
            options["worker_tmp_dir"] = _MEMORY_DIR
        for key, value in options.items():
            self.cfg.set(key, value)

    def load(self) -> Any:
        from tend_portal.web import create_app

        return create_app(self._settings)
