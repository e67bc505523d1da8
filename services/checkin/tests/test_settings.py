"""Settings: defaults, environment variables, and the web process's required secret key."""

from __future__ import annotations

import pytest

from tend_checkin.settings import Settings, from_environment, require_secret_key
from tend_common.settings import SettingsError, load_settings


def test_defaults() -> None:
    settings = load_settings(Settings, "TEND_CHECKIN_", environ={})
    assert settings.grpc_port == 50052
    assert settings.metrics_port == 9102
    assert settings.http_port == 8001
    assert settings.database_url == "postgresql://tend_checkin@127.0.0.1:5432/tend_checkin"
    assert settings.identity_target == "127.0.0.1:50051"
    assert settings.redis_prefix == "tend:checkin:"
    assert (settings.code_step_seconds, settings.code_digits, settings.checkin_opens_minutes_before) == (15, 6, 10)
    assert (settings.web_workers, settings.web_threads) == (2, 16)
    assert (settings.code_previous_steps, settings.max_wrong_codes, settings.trusted_proxies) == (1, 5, ())
    assert not settings.uses_https


def test_read_from_prefixed_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TEND_CHECKIN_CODE_DIGITS", "8")
    monkeypatch.setenv("TEND_CHECKIN_PUBLIC_BASE_URL", "https://checkin.example.ac.uk")
    monkeypatch.setenv("TEND_CHECKIN_TRUSTED_PROXIES", "10.0.0.0/8, 2001:db8::1")
    settings = from_environment()
    assert settings.code_digits == 8
    assert settings.trusted_proxies == ("10.0.0.0/8", "2001:db8::1")
    assert settings.uses_https


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("CODE_DIGITS", "12"),
        ("CODE_STEP_SECONDS", "1"),
        ("PUBLIC_BASE_URL", "checkin.example.ac.uk"),
        ("PORTAL_BASE_URL", "https://tend.example.ac.uk/"),
        ("DISPLAY_TIMEZONE", "Mars/Olympus_Mons"),
        ("CODE_PREVIOUS_STEPS", "9"),
        ("MAX_WRONG_CODES", "0"),
        ("TRUSTED_PROXIES", "10.0.0.0/8,the-load-balancer"),
    ],
)
def test_invalid_values_are_named(name: str, value: str) -> None:
    with pytest.raises(SettingsError, match=f"TEND_CHECKIN_{name}"):
        load_settings(Settings, "TEND_CHECKIN_", environ={f"TEND_CHECKIN_{name}": value})


def test_web_process_needs_a_secret_key() -> None:
    with pytest.raises(SettingsError, match="TEND_CHECKIN_SECRET_KEY is not set"):
        require_secret_key(Settings())
    with pytest.raises(SettingsError, match="shorter than"):
        require_secret_key(Settings(secret_key="short"))
    assert require_secret_key(Settings(secret_key="k" * 40)) == "k" * 40


def test_every_setting_is_in_the_env_example() -> None:
    import dataclasses
    from pathlib import Path

    example = (Path(__file__).parent.parent / ".env.example").read_text()
    listed = {line.split("=", 1)[0] for line in example.splitlines() if line and not line.startswith("#")}
    assert listed == {f"TEND_CHECKIN_{f.name.upper()}" for f in dataclasses.fields(Settings)}
