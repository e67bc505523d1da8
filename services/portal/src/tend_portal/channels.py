"""One gRPC channel per service the portal calls, shared by every client of that service in the app.

A channel multiplexes concurrent calls over one connection and reconnects on its own, so one per target is enough;
opening one per client only multiplied connections and their authentication. Channels are opened on first use (a
test app given fakes opens none it does not need) and closed together when the worker stops. They must not be
shared across a fork: each gunicorn worker builds its own app, and so its own channels.
"""

from __future__ import annotations

import threading

import grpc
from flask import Flask

from tend_common.service_auth import channel_to
from tend_portal.settings import Settings

_CALLER = "portal"
_EXTENSION_KEY = "tend_portal_channels"


class ServiceChannels:
    """The portal's channels to identity, checkin, indicators, notify and audit, each opened once, lazily."""

    def __init__(self, settings: Settings) -> None:
        self._targets = {
            "identity": settings.identity_target,
            "checkin": settings.checkin_target,
            "indicators": settings.indicators_target,
            "notify": settings.notify_target,
            "audit": settings.audit_target,
        }
        self._service_key = settings.service_key
        self._open: dict[str, grpc.Channel] = {}
        self._lock = threading.Lock()

    @property
    def identity(self) -> grpc.Channel:
        return self._channel("identity")

    @property
    def checkin(self) -> grpc.Channel:
        return self._channel("checkin")

    @property
    def indicators(self) -> grpc.Channel:
        return self._channel("indicators")

    @property
    def notify(self) -> grpc.Channel:
        return self._channel("notify")

    @property
    def audit(self) -> grpc.Channel:
        return self._channel("audit")

    def _channel(self, service: str) -> grpc.Channel:
        with self._lock:
            channel = self._open.get(service)
            if channel is None:
                channel = channel_to(self._targets[service], service, _CALLER, self._service_key)
                self._open[service] = channel
            return channel

    def close(self) -> None:
        with self._lock:
            channels, self._open = list(self._open.values()), {}
        for channel in channels:
            channel.close()


def install_channels(app: Flask, channels: ServiceChannels) -> None:
    app.extensions[_EXTENSION_KEY] = channels


def close_channels(app: Flask) -> None:
    """Closes the app's channels, if it has any; for the end of a worker (or of a test)."""
    channels = app.extensions.get(_EXTENSION_KEY)
    if isinstance(channels, ServiceChannels):
        channels.close()
