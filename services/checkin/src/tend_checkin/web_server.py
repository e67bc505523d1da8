"""Serves the check-in web app with gunicorn (see tend_common.gunicorn_server)."""

from __future__ import annotations

from tend_checkin.settings import Settings, require_secret_key
from tend_checkin.web import close_app, create_app
from tend_common.gunicorn_server import GunicornServer, WebServerOptions


def serve_web(settings: Settings) -> None:
    """Runs gunicorn in this process until SIGTERM (graceful) or SIGINT."""
    require_secret_key(settings)  # fail in the master with a clear message, not in every worker
    options = WebServerOptions(
        name="checkin-web",
        bind=f"{settings.listen_host}:{settings.http_port}",
        workers=settings.web_workers,
        threads=settings.web_threads,
        log_level=settings.log_level,
        graceful_timeout=20,  # a check-in in flight waits for a broker confirm
    )
    GunicornServer(options, lambda: create_app(settings), close_app).run()
