"""The portal's settings, read once at start-up from TEND_PORTAL_* environment variables."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from urllib.parse import urlsplit

from tend_common.settings import SettingsError, load_settings

PREFIX = "TEND_PORTAL_"


@dataclasses.dataclass(frozen=True, kw_only=True)
class Settings:
    """The portal keeps no database and no broker connection, so it does not extend ServiceSettings."""

    http_host: str = "127.0.0.1"
    http_port: int = 8000
    # The address people use to reach the portal; an https address makes the session cookie Secure.
    public_base_url: str = "http://127.0.0.1:8000"
    identity_target: str = "127.0.0.1:50051"
    checkin_target: str = "127.0.0.1:50052"
    indicators_target: str = "127.0.0.1:50053"
    notify_target: str = "127.0.0.1:50054"
    audit_target: str = "127.0.0.1:50055"
    # The institution's check-in host: check-in tokens are handed only to it, and QR codes point only at it.
    checkin_base_url: str = "http://127.0.0.1:8001"
    # The institution's name on the "Sign in with ..." button; empty hides it. Set it when identity has an OpenID
    # Connect provider configured, and list <public_base_url>/sign-in/oidc/callback among identity's redirect URIs.
    oidc_institution_name: str = ""
    # Signs the Flask session that holds the CSRF token. Required: a default would be a shared secret.
    secret_key: str
    grpc_timeout_seconds: float = 5.0
    web_workers: int = 2
    web_threads: int = 8
    log_level: str = "INFO"
    # The portal's Ed25519 key (base64) for its calls to identity and checkin; see tend_common.service_auth.
    service_key: str = ""

    def __post_init__(self) -> None:
        problems = []
        if len(self.secret_key) < 16:
            problems.append(f"{PREFIX}SECRET_KEY: must be at least 16 characters (use a long random value)")
        for name in ("public_base_url", "checkin_base_url"):
            parts = urlsplit(getattr(self, name))
            if parts.scheme not in {"http", "https"} or not parts.netloc or parts.path not in {"", "/"}:
                problems.append(f"{PREFIX}{name.upper()}: must be an http(s) origin such as https://host")
        if self.grpc_timeout_seconds <= 0:
            problems.append(f"{PREFIX}GRPC_TIMEOUT_SECONDS: must be positive")
        if problems:
            raise SettingsError("invalid settings: " + "; ".join(problems))
        # A trailing slash would make "<base>/c/" comparisons and built addresses inconsistent.
        object.__setattr__(self, "public_base_url", self.public_base_url.rstrip("/"))
        object.__setattr__(self, "checkin_base_url", self.checkin_base_url.rstrip("/"))

    @property
    def secure_cookies(self) -> bool:
        return self.public_base_url.startswith("https://")

    @property
    def checkin_origin(self) -> str:
        parts = urlsplit(self.checkin_base_url)
        return f"{parts.scheme}://{parts.netloc}"


def load(environ: Mapping[str, str] | None = None) -> Settings:
    """Reads the settings; raises SettingsError naming every missing or malformed variable."""
    return load_settings(Settings, PREFIX, environ)
