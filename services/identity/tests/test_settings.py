from __future__ import annotations

import pytest

from tend_common.settings import SettingsError
from tend_identity.settings import load


def test_defaults() -> None:
    settings = load({})

    assert settings.grpc_port == 50051
    assert settings.metrics_port == 9101
    assert settings.database_url == "postgresql://tend_identity@127.0.0.1:5432/tend_identity"
    assert settings.checkin_token_ttl_seconds == 3600
    assert settings.assertion_ttl_seconds == 300
    assert settings.session_ttl_seconds == 28800
    assert settings.academic_year == "2026/27"


def test_read_from_prefixed_variables() -> None:
    settings = load({"TEND_IDENTITY_ACADEMIC_YEAR": "2027/28", "TEND_IDENTITY_ASSERTION_TTL_SECONDS": "60"})

    assert settings.academic_year == "2027/28"
    assert settings.assertion_ttl_seconds == 60


def test_every_problem_is_reported_at_once() -> None:
    with pytest.raises(SettingsError) as raised:
        load({"TEND_IDENTITY_ACADEMIC_YEAR": "next year", "TEND_IDENTITY_SESSION_TTL_SECONDS": "0"})

    assert "TEND_IDENTITY_ACADEMIC_YEAR" in str(raised.value)
    assert "TEND_IDENTITY_SESSION_TTL_SECONDS" in str(raised.value)
