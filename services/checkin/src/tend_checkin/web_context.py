"""The collaborators the web views use, built once per process by the app factory."""

from __future__ import annotations

import zoneinfo
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from flask import Flask, current_app

from tend_checkin.recording import CheckinRecorder
from tend_checkin.session_cache import SessionCache
from tend_checkin.settings import Settings
from tend_common.tokens import TokenVerifier

Clock = Callable[[], datetime]

EXTENSION = "tend_checkin"


@dataclass(frozen=True)
class WebContext:
    settings: Settings
    sessions: SessionCache
    verifier: TokenVerifier
    recorder: CheckinRecorder
    clock: Clock
    display_zone: zoneinfo.ZoneInfo
    # Closes the process's connections (database pool, Redis, broker, identity channel).
    close: Callable[[], None]


def web_context() -> WebContext:
    context: WebContext = current_app.extensions[EXTENSION]
    return context


def close_app(app: Flask) -> None:
    context: WebContext = app.extensions[EXTENSION]
    context.close()
