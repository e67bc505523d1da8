"""Identity's settings, read once at start-up from variables prefixed TEND_IDENTITY_."""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping

from tend_common.settings import ServiceSettings, SettingsError, load_settings

PREFIX = "TEND_IDENTITY_"
ACADEMIC_YEAR = re.compile(r"[0-9]{4}/[0-9]{2}")


@dataclasses.dataclass(frozen=True, kw_only=True)
class Settings(ServiceSettings):
    """Everything identity reads from the environment; see services/identity/.env.example."""

    database_url: str = "postgresql://tend_identity@127.0.0.1:5432/tend_identity"
    grpc_port: int = 50051
    metrics_port: int = 9101
    # Lifetime of a student's check-in token.
    checkin_token_ttl_seconds: int = 3600
    # Lifetime of an assertion of the signed-in person issued to another service.
    assertion_ttl_seconds: int = 300
    # Lifetime of a sign-in session.
    session_ttl_seconds: int = 28800
    # The academic year whose key makes the pseudonyms in check-in tokens.
    academic_year: str = "2026/27"
    # How long an access decision waits for its audit record to be committed before failing unanswered.
    audit_wait_seconds: float = 5.0
    # Below this many students an aggregate is suppressed.
    minimum_cohort_size: int = 10
    # How long a break-glass grant is honoured.
    break_glass_minutes: int = 60
    # OpenID Connect sign-in: the provider's issuer URL (empty turns it off), this client's id and secret, the
    # callback addresses a sign-in may return to, and the ID token claim holding the user name in student records.
    oidc_issuer: str = ""
    oidc_client_id: str = ""
    oidc_client_secret: str = ""
    oidc_redirect_uris: tuple[str, ...] = ()
    oidc_username_claim: str = "preferred_username"
    # Key-encryption key (base64 of 32 random bytes; a secret) wrapping the signing keys and pseudonym secrets in
    # the database; earlier ones, still accepted for unwrapping while the key is rotated; and, for a development
    # machine only, permission to store those secrets unwrapped when no key is set (see tend_identity.secret_wrapping).
    key_encryption_key: str = ""
    previous_key_encryption_keys: tuple[str, ...] = ()
    allow_unwrapped_secrets: bool = False

    def __post_init__(self) -> None:
        problems = [
            f"{PREFIX}{name.upper()}: must be positive"
            for name in (
                "checkin_token_ttl_seconds",
                "assertion_ttl_seconds",
                "session_ttl_seconds",
                "minimum_cohort_size",
                "break_glass_minutes",
                "audit_wait_seconds",
            )
            if getattr(self, name) <= 0
        ]
        if self.oidc_issuer and not (self.oidc_client_id and self.oidc_redirect_uris):
            problems.append(f"{PREFIX}OIDC_CLIENT_ID and {PREFIX}OIDC_REDIRECT_URIS: needed with an OIDC issuer")
        if self.oidc_issuer and not self.oidc_issuer.startswith(("https://", "http://127.0.0.1", "http://localhost")):
            problems.append(f"{PREFIX}OIDC_ISSUER: must be an https address")
        if not ACADEMIC_YEAR.fullmatch(self.academic_year):
            problems.append(f"{PREFIX}ACADEMIC_YEAR: expected a year like 2026/27")
        if problems:
            raise SettingsError("invalid settings: " + "; ".join(problems))

    @property
    def longest_token_ttl_seconds(self) -> int:
        """How long a token signed now may stay valid, so how long a retired key must still be published."""
        return max(self.checkin_token_ttl_seconds, self.assertion_ttl_seconds)


def load(environ: Mapping[str, str] | None = None) -> Settings:
    return load_settings(Settings, PREFIX, environ)
