"""The collaborators the ingest views use, built once per worker process by the app factory."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from flask import Flask, current_app
from psycopg_pool import ConnectionPool

from tend_indicators.directory import Directory
from tend_indicators.settings import Settings
from tend_indicators.web_auth import SourceKeys

EXTENSION = "tend_indicators"


@dataclass(frozen=True)
class WebContext:
    settings: Settings
    pool: ConnectionPool
    directory: Directory
    sources: SourceKeys
    # Closes the process's connections (database pool, identity channel).
    close: Callable[[], None]


def web_context() -> WebContext:
    context: WebContext = current_app.extensions[EXTENSION]
    return context


def close_app(app: Flask) -> None:
    context: WebContext = app.extensions[EXTENSION]
    context.close()
