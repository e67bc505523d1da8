"""Settings: defaults, and every malformed value named in one error."""

from __future__ import annotations

import pytest

from tend_common.settings import SettingsError, load_settings
from tend_notify.settings import Settings, require_service_key


def test_defaults() -> None:
    settings = load_settings(Settings, "TEND_NOTIFY_", environ={})
    assert (settings.grpc_port, settings.metrics_port) == (50054, 9104)
    assert (settings.delivery_mode, settings.smtp_security, settings.smtp_connections) == ("smtp", "none", 4)
    assert (settings.reminder_after_days, settings.escalation_after_days, settings.digest_hour) == (7, 14, 8)
    assert settings.allowed_sender_domains == ("example.ac.uk",)


def test_every_problem_is_reported_at_once() -> None:
    environ = {
        "TEND_NOTIFY_DELIVERY_MODE": "mailbox",
        "TEND_NOTIFY_SMTP_SECURITY": "ssl",
        "TEND_NOTIFY_SMTP_USERNAME": "tend",
        "TEND_NOTIFY_REMINDER_AFTER_DAYS": "14",
        "TEND_NOTIFY_ALLOWED_SENDER_DOMAINS": "",
    }
    with pytest.raises(SettingsError) as raised:
        load_settings(Settings, "TEND_NOTIFY_", environ=environ)
    message = str(raised.value)
    for expected in (
        "TEND_NOTIFY_MAILBOX_DIR: required when the delivery mode is mailbox",
        "TEND_NOTIFY_SMTP_SECURITY: must be one of none, starttls, tls",
        "TEND_NOTIFY_SMTP_USERNAME and TEND_NOTIFY_SMTP_PASSWORD: set both or neither",
        "TEND_NOTIFY_REMINDER_AFTER_DAYS: must be at least 1 and below ESCALATION_AFTER_DAYS",
        "TEND_NOTIFY_ALLOWED_SENDER_DOMAINS: name at least one domain",
    ):
        assert expected in message


def test_serve_needs_a_service_key() -> None:
    with pytest.raises(SettingsError, match="TEND_NOTIFY_SERVICE_KEY is not set"):
        require_service_key(Settings())
    assert require_service_key(Settings(service_key="abc")) == "abc"
