"""Checkin's settings, read from TEND_CHECKIN_* variables."""

from __future__ import annotations

import ipaddress
import zoneinfo
from dataclasses import dataclass

from tend_common.settings import ServiceSettings, SettingsError, load_settings

PREFIX = "TEND_CHECKIN_"

# Below this a signing key for browser sessions is guessable in practice.
_MIN_SECRET_KEY_LENGTH = 32


@dataclass(frozen=True, kw_only=True)
class Settings(ServiceSettings):
    database_url: str = "postgresql://tend_checkin@127.0.0.1:5432/tend_checkin"
    grpc_port: int = 50052
    metrics_port: int = 9102
    # Identity's gRPC address: its public keys verify tokens and assertions, and it decides staff access.
    identity_target: str = "127.0.0.1:50051"
    redis_url: str = "redis://127.0.0.1:6379/0"
    # Every Redis key starts with this, so several deployments (or tests) can share one Redis.
    redis_prefix: str = "tend:checkin:"
    http_port: int = 8001
    # The institution's check-in host, the address QR codes point to.
    public_base_url: str = "http://127.0.0.1:8001"
    # The portal, which hands a signed-in student's check-in token back to this host.
    portal_base_url: str = "http://127.0.0.1:8000"
    # Signs the browser session (CSRF token, hand-off nonce). Required by the web process only.
    secret_key: str = ""
    code_step_seconds: int = 15
    # How many steps before the current one a code is still accepted: 1 lets a student who read the code just
    # before it rotated still get in; more tolerates slower typing at the cost of a longer-lived screenshot.
    code_previous_steps: int = 1
    code_digits: int = 6
    # Wrong codes a student may enter for one session; the next attempt is refused even with the right code.
    max_wrong_codes: int = 5
    # Proxies (CIDR ranges) whose X-Forwarded-For header is believed when finding a student's network address for
    # a session restricted to campus networks. Empty: the address of the connection itself is used.
    trusted_proxies: tuple[str, ...] = ()
    checkin_opens_minutes_before: int = 10
    web_workers: int = 2
    # Threads per worker: each waits on its own broker confirm while the others work, so a worker keeps many
    # check-ins in flight; one worker per core keeps the GIL from being the limit.
    web_threads: int = 16
    # Times on the student pages are shown in this zone; everything stored or sent is UTC.
    display_timezone: str = "Europe/London"

    def __post_init__(self) -> None:
        problems = []
        if not 5 <= self.code_step_seconds <= 300:
            problems.append(f"{PREFIX}CODE_STEP_SECONDS: must be between 5 and 300")
        # Dynamic truncation yields 31 bits, so more than 9 digits would not be uniformly distributed.
        if not 4 <= self.code_digits <= 9:
            problems.append(f"{PREFIX}CODE_DIGITS: must be between 4 and 9")
        if not 0 <= self.code_previous_steps <= 4:
            problems.append(f"{PREFIX}CODE_PREVIOUS_STEPS: must be between 0 and 4")
        if not 1 <= self.max_wrong_codes <= 20:
            problems.append(f"{PREFIX}MAX_WRONG_CODES: must be between 1 and 20")
        for proxy in self.trusted_proxies:
            try:
                ipaddress.ip_network(proxy, strict=False)
            except ValueError:
                problems.append(f"{PREFIX}TRUSTED_PROXIES: {proxy!r} is not an address or CIDR range")
        if not 0 <= self.checkin_opens_minutes_before <= 120:
            problems.append(f"{PREFIX}CHECKIN_OPENS_MINUTES_BEFORE: must be between 0 and 120")
        if self.web_workers < 1 or self.web_threads < 1:
            problems.append(f"{PREFIX}WEB_WORKERS and {PREFIX}WEB_THREADS: must be at least 1")
        for name, url in (("PUBLIC_BASE_URL", self.public_base_url), ("PORTAL_BASE_URL", self.portal_base_url)):
            if not url.startswith(("http://", "https://")) or url.endswith("/"):
                problems.append(f"{PREFIX}{name}: must start with http:// or https:// and not end with /")
        try:
            zoneinfo.ZoneInfo(self.display_timezone)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            problems.append(f"{PREFIX}DISPLAY_TIMEZONE: unknown time zone")
        if problems:
            raise SettingsError("invalid settings: " + "; ".join(problems))

    @property
    def uses_https(self) -> bool:
        return self.public_base_url.startswith("https://")


def from_environment() -> Settings:
    return load_settings(Settings, PREFIX)


def require_secret_key(settings: Settings) -> str:
    """The web process's session signing key; a clear error when it is missing or too short."""
    if len(settings.secret_key) < _MIN_SECRET_KEY_LENGTH:
        state = "is not set" if not settings.secret_key else f"is shorter than {_MIN_SECRET_KEY_LENGTH} characters"
        raise SettingsError(
            f"{PREFIX}SECRET_KEY {state}. The check-in web process signs browser sessions with it; set it to a long"
            " random value, for example the output of: python -c 'import secrets; print(secrets.token_urlsafe(48))'"
        )
    return settings.secret_key
