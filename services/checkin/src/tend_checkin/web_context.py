"""The collaborators the web views use, built once per process by the app factory."""

from __future__ import annotations

import zoneinfo
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from flask import Flask, current_app

from tend_checkin.networks import IPNetwork
from tend_checkin.prerendered import PrerenderedTemplate
from tend_checkin.recording import CheckinRecorder
from tend_checkin.session_cache import SessionCache
from tend_checkin.settings import Settings
from tend_checkin.token_cache import Verifier

Clock = Callable[[], datetime]

EXTENSION = "tend_checkin"


@dataclass(frozen=True)
class WebContext:
    settings: Settings
    sessions: SessionCache
    verifier: Verifier
    recorder: CheckinRecorder
    clock: Clock
    # Proxies whose X-Forwarded-For is believed for campus network ranges.
    trusted_proxies: tuple[IPNetwork, ...]
    display_zone: zoneinfo.ZoneInfo
    # The page of a successful check-in (done.html), rendered once and filled in per check-in.
    done_page: PrerenderedTemplate
    # Closes the process's connections (database pool, Redis, broker, identity channel).
    close: Callable[[], None]


def web_context() -> WebContext:
    context: WebContext = current_app.extensions[EXTENSION]
    return context


def close_app(app: Flask) -> None:
    context: WebContext = app.extensions[EXTENSION]
    context.close()
