"""Audit's settings, read from TEND_AUDIT_* variables."""

from __future__ import annotations

from dataclasses import dataclass

from tend_common.settings import ServiceSettings, load_settings


@dataclass(frozen=True, kw_only=True)
class Settings(ServiceSettings):
    database_url: str = "postgresql://tend_audit@127.0.0.1:5432/tend_audit"
    grpc_port: int = 50055
    metrics_port: int = 9105


def from_environment() -> Settings:
    return load_settings(Settings, "TEND_AUDIT_")
