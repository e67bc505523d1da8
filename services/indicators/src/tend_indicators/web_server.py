"""Serves the ingest web app with gunicorn (see tend_common.gunicorn_server)."""

from __future__ import annotations

from tend_common.gunicorn_server import GunicornServer, WebServerOptions
from tend_indicators.settings import Settings, require_service_key, require_source_credentials
from tend_indicators.web import close_app, create_app


def serve_web(settings: Settings) -> None:
    """Runs gunicorn in this process until SIGTERM (graceful) or SIGINT."""
    require_source_credentials(settings)
    require_service_key(settings)
    options = WebServerOptions(
        name="indicators-web",
        bind=f"{settings.listen_host}:{settings.http_port}",
        workers=settings.web_workers,
        threads=settings.web_threads,
        log_level=settings.log_level,
        graceful_timeout=30,  # a large batch is one transaction
        request_timeout=120,  # thousands of statements are mapped through identity and stored in one transaction
    )
    GunicornServer(options, lambda: create_app(settings), close_app).run()
