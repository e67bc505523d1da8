from __future__ import annotations

from dataclasses import dataclass

import pytest

from tend_common.settings import ServiceSettings, SettingsError, load_settings


@dataclass(frozen=True, kw_only=True)
class ExampleSettings(ServiceSettings):
    secret_key: str
    workers: int = 2
    hosts: tuple[str, ...] = ()
    debug: bool = False


def test_reads_prefixed_variables_and_converts_types() -> None:
    settings = load_settings(
        ExampleSettings,
        "TEND_X_",
        {
            "TEND_X_SECRET_KEY": "k",
            "TEND_X_WORKERS": "4",
            "TEND_X_HOSTS": "a, b",
            "TEND_X_DEBUG": "yes",
            "TEND_X_GRPC_PORT": "5000",
        },
    )
    assert settings == ExampleSettings(secret_key="k", workers=4, hosts=("a", "b"), debug=True, grpc_port=5000)


def test_reports_every_problem_at_once() -> None:
    with pytest.raises(SettingsError) as raised:
        load_settings(ExampleSettings, "TEND_X_", {"TEND_X_WORKERS": "four", "TEND_X_DEBUG": "maybe"})
    message = str(raised.value)
    assert "TEND_X_SECRET_KEY: required but not set" in message
    assert "TEND_X_WORKERS" in message
    assert "TEND_X_DEBUG: expected true or false" in message
