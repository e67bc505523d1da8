"""Typed settings read once from the environment at start-up.

Each service declares a frozen dataclass; `load_settings` fills it from variables named PREFIX + FIELD_NAME in upper
case. Every missing or malformed variable is reported in one error, so a deployment is fixed in one pass.
"""

from __future__ import annotations

import dataclasses
import os
import types
import typing
from collections.abc import Mapping
from typing import Any, TypeVar

T = TypeVar("T")


class SettingsError(ValueError):
    """One or more environment variables are missing or malformed."""


def _convert(raw: str, target: Any) -> Any:
    if target is bool:
        lowered = raw.strip().lower()
        if lowered in {"1", "true", "yes", "on"}:
            return True
        if lowered in {"0", "false", "no", "off"}:
            return False
        raise ValueError("expected true or false")
    if target is int:
        return int(raw)
    if target is float:
        return float(raw)
    if target is str:
        return raw
    origin = typing.get_origin(target)
    if origin is tuple:
        (item_type, *_rest) = typing.get_args(target)
        return tuple(_convert(part.strip(), item_type) for part in raw.split(",") if part.strip())
    if origin in (typing.Union, types.UnionType):
        inner = [a for a in typing.get_args(target) if a is not type(None)]
        return None if raw == "" else _convert(raw, inner[0])
    raise TypeError(f"unsupported settings type {target!r}")


def load_settings(cls: type[T], prefix: str, environ: Mapping[str, str] | None = None) -> T:
    """Builds `cls` from the environment. Fields without a default are required."""
    env = os.environ if environ is None else environ
    hints = typing.get_type_hints(cls)
    values: dict[str, Any] = {}
    problems: list[str] = []
    for field in dataclasses.fields(cls):  # type: ignore[arg-type]
        name = f"{prefix}{field.name.upper()}"
        if name in env:
            try:
                values[field.name] = _convert(env[name], hints[field.name])
            except ValueError as exc:
                problems.append(f"{name}: {exc}")
        elif field.default is dataclasses.MISSING and field.default_factory is dataclasses.MISSING:
            problems.append(f"{name}: required but not set")
    if problems:
        raise SettingsError("invalid settings: " + "; ".join(problems))
    return cls(**values)


@dataclasses.dataclass(frozen=True, kw_only=True)
class ServiceSettings:
    """Settings every back-end service has. A service's own settings class extends this one."""

    database_url: str = ""
    amqp_url: str = "amqp://guest:guest@127.0.0.1:5672/%2F"
    # Prefix of every exchange and queue name, so that several suites (or tests) can share one broker.
    amqp_namespace: str = "tend"
    # Address the gRPC server and metrics endpoint listen on: loopback locally, 0.0.0.0 in a container.
    listen_host: str = "127.0.0.1"
    grpc_port: int = 0
    metrics_port: int = 0
    log_level: str = "INFO"
    # This service's Ed25519 key (base64) for calls to other services, and the services it accepts calls from, as
    # name=base64-public-key entries; see tend_common.service_auth.
    service_key: str = ""
    trusted_services: tuple[str, ...] = ()
