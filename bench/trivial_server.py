"""The ceiling for the check-in benchmark: a trivial Flask endpoint served by gunicorn with the check-in web
process's own server settings (gthread workers and threads). Run as `python -m bench.trivial_server PORT WORKERS
THREADS`."""

from __future__ import annotations

import sys
from typing import Any

from flask import Flask
from gunicorn.app.base import BaseApplication


def trivial_app() -> Flask:
    app = Flask(__name__)

    @app.post("/ping")
    def ping() -> str:
        return "ok"

    @app.get("/healthz")
    def healthz() -> str:
        return "ok"

    return app


class TrivialServer(BaseApplication):  # type: ignore[misc]  # gunicorn ships no type information
    def __init__(self, port: int, workers: int, threads: int) -> None:
        self._options: dict[str, Any] = {
            "bind": f"127.0.0.1:{port}",
            "worker_class": "gthread",
            "workers": workers,
            "threads": threads,
            "accesslog": None,
            "control_socket_disable": True,
            "worker_tmp_dir": "/dev/shm",  # noqa: S108 (gunicorn's heartbeat files only)
        }
        super().__init__()

    def load_config(self) -> None:
        for name, value in self._options.items():
            self.cfg.set(name, value)

    def load(self) -> Flask:
        return trivial_app()


if __name__ == "__main__":
    port, workers, threads = (int(arg) for arg in sys.argv[1:4])
    TrivialServer(port, workers, threads).run()
