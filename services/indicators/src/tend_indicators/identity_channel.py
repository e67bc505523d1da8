"""The channel to identity: every call carries indicators' signed service credential when a service key is set
(`serve` and `web` require one; one-off commands may run without, against an identity that does not ask)."""

from __future__ import annotations

import grpc

from tend_common.service_auth import ServiceTokenSigner, authenticated_channel
from tend_indicators.settings import Settings

SERVICE = "indicators"
IDENTITY = "identity"


def identity_channel(settings: Settings) -> grpc.Channel:
    if not settings.service_key:
        return grpc.insecure_channel(settings.identity_target)
    return authenticated_channel(settings.identity_target, ServiceTokenSigner(SERVICE, settings.service_key), IDENTITY)
