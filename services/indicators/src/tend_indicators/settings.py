"""Indicators' settings, read from TEND_INDICATORS_* variables."""

from __future__ import annotations

import zoneinfo
from dataclasses import dataclass

from tend_common.settings import ServiceSettings, SettingsError, load_settings

PREFIX = "TEND_INDICATORS_"

# Below this a source's key is guessable in practice.
_MIN_SOURCE_KEY_LENGTH = 24


@dataclass(frozen=True, kw_only=True)
class Settings(ServiceSettings):
    database_url: str = "postgresql://tend_indicators@127.0.0.1:5432/tend_indicators"
    grpc_port: int = 50053
    metrics_port: int = 9103
    # Identity's gRPC address: mapping source identifiers to pseudonyms, responsible staff, access decisions.
    identity_target: str = "127.0.0.1:50051"
    # This service's Ed25519 key (base64) for calls to other services; required by `serve` and `web`.
    service_key: str = ""
    # The services that may call indicators, as name=base64-public-key; only the portal may use IndicatorsService.
    trusted_services: tuple[str, ...] = ()
    # Port of the ingest web process (`tend-indicators web`): xAPI statements and the generic event format.
    http_port: int = 8003
    # Sources allowed to send data, as "name:key" pairs separated by commas; each authenticates with HTTP Basic
    # (user name = source name, password = key). Required by `web`.
    source_credentials: tuple[str, ...] = ()
    # xAPI account home pages whose account names are the institution's user names; empty accepts any home page.
    xapi_account_home_pages: tuple[str, ...] = ()
    # The xAPI account home page under which statements read back (GET) name their actor by pseudonym; Tend's own
    # address at the institution.
    xapi_pseudonym_home_page: str = "https://tend.invalid/pseudonyms"
    # The institution's time zone: engagement is counted per calendar day here.
    timezone: str = "Europe/London"
    # A JSON file of rule settings per institution and programme, with the term calendar; empty for the defaults.
    rules_file: str = ""
    # The institution a student belongs to when their enrolment names none.
    default_institution: str = "default"
    # Aggregates over fewer students than this are suppressed.
    minimum_cohort_size: int = 10
    # How often `serve` recomputes features and flags; it also recomputes a few seconds after new data arrives.
    recompute_interval_seconds: int = 300
    web_workers: int = 2
    web_threads: int = 4
    # Largest request body the ingest web process accepts, in megabytes.
    max_request_megabytes: int = 16

    def __post_init__(self) -> None:
        problems = []
        try:
            zoneinfo.ZoneInfo(self.timezone)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            problems.append(f"{PREFIX}TIMEZONE: unknown time zone")
        if self.minimum_cohort_size < 2:
            problems.append(f"{PREFIX}MINIMUM_COHORT_SIZE: must be at least 2")
        if self.recompute_interval_seconds < 1:
            problems.append(f"{PREFIX}RECOMPUTE_INTERVAL_SECONDS: must be at least 1")
        if self.web_workers < 1 or self.web_threads < 1:
            problems.append(f"{PREFIX}WEB_WORKERS and {PREFIX}WEB_THREADS: must be at least 1")
        if not self.xapi_pseudonym_home_page.startswith(("https://", "http://")):
            problems.append(f"{PREFIX}XAPI_PSEUDONYM_HOME_PAGE: must be an http(s) address")
        if not 1 <= self.max_request_megabytes <= 512:
            problems.append(f"{PREFIX}MAX_REQUEST_MEGABYTES: must be between 1 and 512")
        try:
            parse_source_credentials(self.source_credentials)
        except SettingsError as exc:
            problems.append(str(exc))
        if problems:
            raise SettingsError("invalid settings: " + "; ".join(problems))


def parse_source_credentials(pairs: tuple[str, ...]) -> dict[str, str]:
    """Source name to key. Names and keys are checked, never echoed in errors (a key must not reach a log)."""
    credentials: dict[str, str] = {}
    for position, pair in enumerate(pairs, start=1):
        name, separator, key = pair.partition(":")
        name = name.strip()
        if not separator or not name.replace("-", "").replace("_", "").isalnum():
            raise SettingsError(f"{PREFIX}SOURCE_CREDENTIALS: entry {position} must be name:key")
        if len(key) < _MIN_SOURCE_KEY_LENGTH:
            raise SettingsError(
                f"{PREFIX}SOURCE_CREDENTIALS: the key of source {name!r} is shorter than {_MIN_SOURCE_KEY_LENGTH}"
                " characters"
            )
        if name in credentials:
            raise SettingsError(f"{PREFIX}SOURCE_CREDENTIALS: source {name!r} is listed twice")
        credentials[name] = key
    return credentials


def from_environment() -> Settings:
    return load_settings(Settings, PREFIX)


def require_source_credentials(settings: Settings) -> dict[str, str]:
    """The sources allowed to send data; a clear error when none is configured."""
    credentials = parse_source_credentials(settings.source_credentials)
    if not credentials:
        raise SettingsError(
            f"{PREFIX}SOURCE_CREDENTIALS is not set. The ingest web process accepts data only from named sources; set"
            " it to name:key pairs separated by commas, each key a long random value, for example the output of:"
            " python -c 'import secrets; print(secrets.token_urlsafe(32))'"
        )
    return credentials


def require_service_key(settings: Settings) -> str:
    """This service's signing key for calls to identity; a clear error when it is missing."""
    if not settings.service_key:
        raise SettingsError(
            f"{PREFIX}SERVICE_KEY is not set. Indicators signs its calls to identity with it; generate one with:"
            " python -c 'from tend_common.service_auth import generate_service_key; print(generate_service_key())'"
        )
    return settings.service_key
