"""Health routes, settings and the command line."""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING

import pytest

from tend_common.settings import SettingsError
from tend_portal.__main__ import main
from tend_portal.channels import close_channels
from tend_portal.settings import Settings, load
from tend_portal.web import create_app
from tend_testing.processes import free_port

if TYPE_CHECKING:
    from services.portal.tests.conftest import FakeCheckin, PortalBrowser
    from tend_common.grpc_server import GrpcServer


def test_readyz_is_ok_when_identity_and_checkin_answer(browser: PortalBrowser) -> None:
    response = browser.get("/readyz")

    assert response.status_code == 200
    assert browser.get("/healthz").status_code == 200


def test_readyz_names_a_dependency_that_does_not_answer(
    browser: PortalBrowser, fake_checkin: tuple[FakeCheckin, GrpcServer]
) -> None:
    fake_checkin[1].stop(grace_seconds=0)

    response = browser.get("/readyz")

    assert response.status_code == 503
    assert response.get_json()["failing"] == ["checkin"]


def test_readyz_does_not_wait_for_the_services_only_some_pages_need(settings: Settings) -> None:
    # Nothing listens on these ports: indicators, notify and audit are all down.
    down = dataclasses.replace(
        settings,
        indicators_target=f"127.0.0.1:{free_port()}",
        notify_target=f"127.0.0.1:{free_port()}",
        audit_target=f"127.0.0.1:{free_port()}",
    )
    app = create_app(down)

    response = app.test_client().get("/readyz")

    assert response.status_code == 200
    close_channels(app)


def test_metrics_are_served(browser: PortalBrowser) -> None:
    assert browser.get("/metrics").status_code == 200


def test_defaults() -> None:
    settings = load({"TEND_PORTAL_SECRET_KEY": "x" * 32})

    assert settings.http_port == 8000
    assert settings.public_base_url == "http://127.0.0.1:8000"
    assert settings.identity_target == "127.0.0.1:50051"
    assert settings.checkin_target == "127.0.0.1:50052"
    assert settings.checkin_base_url == "http://127.0.0.1:8001"
    assert settings.web_workers == 2
    assert settings.web_threads == 8
    assert not settings.secure_cookies


def test_values_come_from_the_environment() -> None:
    settings = load(
        {
            "TEND_PORTAL_SECRET_KEY": "x" * 32,
            "TEND_PORTAL_HTTP_PORT": "9000",
            "TEND_PORTAL_PUBLIC_BASE_URL": "https://portal.example.ac.uk/",
            "TEND_PORTAL_CHECKIN_BASE_URL": "https://checkin.example.ac.uk",
        }
    )

    assert settings.http_port == 9000
    assert settings.public_base_url == "https://portal.example.ac.uk"
    assert settings.secure_cookies
    assert settings.checkin_origin == "https://checkin.example.ac.uk"


def test_a_missing_secret_key_is_a_clear_error() -> None:
    with pytest.raises(SettingsError, match="TEND_PORTAL_SECRET_KEY: required but not set"):
        load({})


@pytest.mark.parametrize(
    ("field", "value"),
    [("secret_key", "short"), ("checkin_base_url", "checkin.example.ac.uk"), ("public_base_url", "https://x/y")],
)
def test_malformed_settings_are_refused(field: str, value: str) -> None:
    environ = {"TEND_PORTAL_SECRET_KEY": "x" * 32, f"TEND_PORTAL_{field.upper()}": value}
    with pytest.raises(SettingsError, match=f"TEND_PORTAL_{field.upper()}"):
        load(environ)


def test_the_command_line_explains_a_missing_secret_key(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("TEND_PORTAL_SECRET_KEY", raising=False)

    assert main(["web"]) == 2
    assert "TEND_PORTAL_SECRET_KEY" in capsys.readouterr().err
