"""The ingest web app's factory: xAPI statements, the generic event format and reference data, for the systems that
send engagement (Moodle, the library, printing, online meetings, lecture capture, student records).

Served by gunicorn (`tend-indicators web`), one app per worker process: the factory runs after the fork, so every
worker has its own database pool and identity channel. No browser uses it: there are no forms, so no CSRF tokens;
every data route authenticates the sending system.
"""

from __future__ import annotations

import contextlib

import grpc
from flask import Flask

from tend_common.db import open_pool
from tend_common.web import add_health_routes, add_security_headers
from tend_indicators import events_views, xapi_views
from tend_indicators.directory import Directory, IdentityDirectory
from tend_indicators.identity_channel import identity_channel
from tend_indicators.settings import (
    Settings,
    from_environment,
    parse_source_credentials,
    require_service_key,
    require_source_credentials,
)
from tend_indicators.web_auth import SourceKeys
from tend_indicators.web_context import EXTENSION, WebContext, close_app

__all__ = ["close_app", "create_app"]


def create_app(settings: Settings | None = None, *, directory: Directory | None = None) -> Flask:
    """Builds the app; `settings` default to the environment, `directory` to identity at settings.identity_target."""
    settings = settings or from_environment()
    require_source_credentials(settings)
    if directory is None:
        require_service_key(settings)
    app = Flask(__name__)
    app.config.update(MAX_CONTENT_LENGTH=settings.max_request_megabytes * 1024 * 1024)
    pool = open_pool(settings.database_url, min_size=1, max_size=settings.web_threads, name="indicators-web")
    channel: grpc.Channel | None = None
    if directory is None:
        channel = identity_channel(settings)
        directory = IdentityDirectory(channel)
    chosen: Directory = directory

    def close() -> None:
        for closer in (channel.close if channel is not None else None, pool.close):
            if closer is not None:
                with contextlib.suppress(Exception):
                    closer()

    app.extensions[EXTENSION] = WebContext(
        settings=settings,
        pool=pool,
        directory=chosen,
        sources=SourceKeys(parse_source_credentials(settings.source_credentials)),
        close=close,
    )

    def database_ready() -> None:
        with pool.connection(timeout=2.0) as conn:
            conn.execute("SELECT 1")

    add_health_routes(app, {"database": database_ready})
    add_security_headers(app)
    app.register_blueprint(xapi_views.blueprint)
    app.register_blueprint(events_views.blueprint)
    return app
