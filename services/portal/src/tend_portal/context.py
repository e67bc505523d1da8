"""The portal's collaborators for one app: its settings and the clients of identity and checkin."""

from __future__ import annotations

import dataclasses

from flask import Flask, current_app

from tend_portal.clients import CheckinApi, IdentityApi
from tend_portal.settings import Settings

_EXTENSION_KEY = "tend_portal"


@dataclasses.dataclass(frozen=True)
class Portal:
    settings: Settings
    identity: IdentityApi
    checkin: CheckinApi


def install(app: Flask, portal: Portal) -> None:
    app.extensions[_EXTENSION_KEY] = portal


def portal() -> Portal:
    """The collaborators of the app handling the current request."""
    found: Portal = current_app.extensions[_EXTENSION_KEY]
    return found
