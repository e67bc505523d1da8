"""The student check-in web app's factory: configuration, connections, and the plumbing routes.

Served by gunicorn (`tend-checkin web`), one app per worker process: the factory runs after the fork, so every
worker has its own database pool, Redis client, broker connection and identity channel.
"""

from __future__ import annotations

import contextlib
import uuid
import zoneinfo
from datetime import UTC, datetime

import redis
from flask import Flask, request

from tend_checkin import events, session_store, views
from tend_checkin.access import checkin_token_verifier
from tend_checkin.browser_sessions import RememberingCookieSessions
from tend_checkin.checkin_marks import CheckinMarks
from tend_checkin.lean_checkin import LeanCheckin
from tend_checkin.networks import parse_networks
from tend_checkin.recording import CheckinRecorder, CodePolicy
from tend_checkin.session_cache import SessionCache
from tend_checkin.sessions import TeachingSession
from tend_checkin.settings import Settings, from_environment, require_secret_key
from tend_checkin.token_cache import CachingVerifier
from tend_checkin.web_context import EXTENSION, Clock, WebContext, close_app
from tend_common.db import open_pool
from tend_common.messaging.pipelined_publisher import PipelinedPublisher
from tend_common.messaging.topology import Topology
from tend_common.service_auth import channel_to
from tend_common.web import add_health_routes, add_security_headers, protect_against_csrf

# Redis is a speed-up here: if it stalls, give up quickly and check in without it.
_REDIS_TIMEOUT_SECONDS = 0.5
# Per worker process.
_MAX_DATABASE_CONNECTIONS = 8
# Check-in forms are one short field; anything bigger is not ours.
_MAX_REQUEST_BYTES = 16 * 1024

__all__ = ["close_app", "create_app"]


def _utc_now() -> datetime:
    return datetime.now(UTC)


def _is_token_handoff() -> bool:
    # Exactly the portal's hand-off POST: its state nonce does the CSRF form token's job.
    return request.method == "POST" and request.endpoint == views.HANDOFF


def create_app(settings: Settings | None = None, *, clock: Clock | None = None) -> Flask:
    """Builds the app; `settings` default to the environment. `clock` is for tests that need a fixed time."""
    settings = settings or from_environment()
    secret_key = require_secret_key(settings)

    app = Flask(__name__)
    app.config.update(
        SECRET_KEY=secret_key,
        SESSION_COOKIE_NAME="tend_checkin_session",
        SESSION_COOKIE_HTTPONLY=True,
        # Lax still travels with the portal's top-level POST back to /token as long as the portal and this host are
        # the same site (subdomains of the institution's domain).
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_SECURE=settings.uses_https,
        MAX_CONTENT_LENGTH=_MAX_REQUEST_BYTES,
    )
    app.session_interface = RememberingCookieSessions()

    # Sessions are cached, so the database sees a query per session per half-minute, not one per request.
    pool = open_pool(
        settings.database_url,
        min_size=1,
        max_size=min(settings.web_threads, _MAX_DATABASE_CONNECTIONS),
        name="checkin-web",
    )
    redis_client = redis.Redis.from_url(
        settings.redis_url, socket_timeout=_REDIS_TIMEOUT_SECONDS, socket_connect_timeout=_REDIS_TIMEOUT_SECONDS
    )
    # Every request thread of the worker waits on its own confirm while others publish: one broker round trip per
    # check-in, not one at a time per process.
    marks = CheckinMarks(redis_client, settings.redis_prefix)
    publisher = PipelinedPublisher(settings.amqp_url, Topology(settings.amqp_namespace), events.PRODUCER)
    identity_channel = channel_to(settings.identity_target, "identity", events.PRODUCER, settings.service_key)

    def load_session(session_id: uuid.UUID) -> TeachingSession | None:
        with pool.connection() as conn:
            return session_store.find_session(conn, session_id)

    def load_previous_class(session_id: uuid.UUID) -> TeachingSession | None:
        with pool.connection() as conn:
            session = session_store.find_session(conn, session_id)
            return session_store.find_previous_in_room(conn, session) if session is not None else None

    # Consulted only for wrong codes, so a mix-up costs one query per session per process, not one per attempt.
    previous_classes = SessionCache(load_previous_class)

    def close() -> None:
        for closer in (publisher.close, marks.close, redis_client.close, identity_channel.close, pool.close):
            with contextlib.suppress(Exception):
                closer()

    context = WebContext(
        settings=settings,
        sessions=SessionCache(load_session),
        verifier=CachingVerifier(checkin_token_verifier(identity_channel)),
        recorder=CheckinRecorder(
            marks,
            publisher,
            CodePolicy(
                step_seconds=settings.code_step_seconds,
                digits=settings.code_digits,
                previous_steps=settings.code_previous_steps,
                max_wrong_codes=settings.max_wrong_codes,
            ),
            previous_class=lambda session: previous_classes.get(session.id),
        ),
        trusted_proxies=parse_networks(settings.trusted_proxies),
        clock=clock or _utc_now,
        display_zone=zoneinfo.ZoneInfo(settings.display_timezone),
        done_page=views.prerendered_done_page(),
        close=close,
    )
    app.extensions[EXTENSION] = context

    def database_ready() -> None:
        with pool.connection(timeout=2.0) as conn:
            conn.execute("SELECT 1")

    # Redis is deliberately not a readiness check: without it check-ins are slower but still accepted, so an outage
    # must not take every check-in replica out of the load balancer.
    add_health_routes(app, {"database": database_ready})
    add_security_headers(app)
    protect_against_csrf(app, exempt=_is_token_handoff)
    views.register(app)
    # The hot path: a check-in POST the lean path can see Flask would record is recorded and answered there.
    app.wsgi_app = LeanCheckin(app, context, app.wsgi_app)  # type: ignore[method-assign]
    return app
