"""Notify's settings, read from TEND_NOTIFY_* variables."""

from __future__ import annotations

from dataclasses import dataclass

from tend_common.settings import ServiceSettings, SettingsError, load_settings

PREFIX = "TEND_NOTIFY_"

SMTP_SECURITY_MODES = ("none", "starttls", "tls")
DELIVERY_MODES = ("smtp", "mailbox")


@dataclass(frozen=True, kw_only=True)
class Settings(ServiceSettings):
    database_url: str = "postgresql://tend_notify@127.0.0.1:5432/tend_notify"
    grpc_port: int = 50054
    metrics_port: int = 9104
    # Identity's gRPC address: public keys for assertions, access decisions, and addresses at send time.
    identity_target: str = "127.0.0.1:50051"
    # This service's Ed25519 key (base64) for calls to other services; required by `serve`.
    service_key: str = ""
    # The services that may call notify, as name=base64-public-key; only the portal may use NotifyService.
    trusted_services: tuple[str, ...] = ()
    redis_url: str = "redis://127.0.0.1:6379/0"
    redis_prefix: str = "tend:notify:"
    # The institution whose templates apply when a request names none.
    default_institution: str = "default"
    # Domains notify may send from; an institution's From address outside them is refused.
    allowed_sender_domains: tuple[str, ...] = ("example.ac.uk",)
    # "smtp" sends through the mail server below; "mailbox" writes each message as an .eml file into mailbox_dir
    # (test mode: nothing leaves the machine).
    delivery_mode: str = "smtp"
    mailbox_dir: str = ""
    smtp_host: str = "127.0.0.1"
    smtp_port: int = 25
    # "none", "starttls" (upgrade a plain connection; refuses to send if the server cannot) or "tls" (implicit TLS).
    smtp_security: str = "none"
    # A CA bundle (PEM) to verify the mail server's certificate with, instead of the system's trust store.
    smtp_ca_file: str = ""
    smtp_username: str = ""
    smtp_password: str = ""
    smtp_timeout_seconds: float = 30.0
    # Sending threads, each with its own reused SMTP connection.
    smtp_connections: int = 4
    # An idle SMTP connection is closed after this long; a new one is opened for the next message.
    smtp_idle_seconds: float = 20.0
    # Retries of temporary failures: exponential back-off from the base, capped, with jitter; then failed.
    retry_base_seconds: float = 60.0
    retry_max_seconds: float = 3600.0
    max_attempts: int = 10
    # How often an idle sending thread looks for due messages.
    dispatch_poll_seconds: float = 0.5
    # Due messages a sending thread takes at a time: their attempts recorded together and their addresses asked of
    # identity together, then each handed over (and its outcome recorded) one after the other.
    dispatch_batch: int = 8
    # Enquiries a member of staff may request per hour, and e-mails notify sends per minute in all.
    sender_limit_per_hour: int = 30
    global_limit_per_minute: int = 1200
    # Days without an answer before the sender is reminded, and before the escalation contact is told.
    reminder_after_days: int = 7
    escalation_after_days: int = 14
    # Local hour (institution's time zone) at which the day's follow-up digests go out.
    digest_hour: int = 8
    # How often follow-ups are checked and unfinished attempts of stopped processes are resolved.
    housekeeping_seconds: float = 60.0
    # The portal, linked from staff digests.
    portal_base_url: str = "http://127.0.0.1:8000"

    def __post_init__(self) -> None:
        broken = [message for failed, message in self._rules() if failed]
        if broken:
            raise SettingsError("invalid settings: " + "; ".join(broken))

    def _rules(self) -> list[tuple[bool, str]]:
        """(broken?, what is wrong) for each rule the values must keep."""
        return [
            (
                self.delivery_mode not in DELIVERY_MODES,
                f"{PREFIX}DELIVERY_MODE: must be one of {', '.join(DELIVERY_MODES)}",
            ),
            (
                self.delivery_mode == "mailbox" and not self.mailbox_dir,
                f"{PREFIX}MAILBOX_DIR: required when the delivery mode is mailbox",
            ),
            (
                self.smtp_security not in SMTP_SECURITY_MODES,
                f"{PREFIX}SMTP_SECURITY: must be one of {', '.join(SMTP_SECURITY_MODES)}",
            ),
            (
                bool(self.smtp_username) != bool(self.smtp_password),
                f"{PREFIX}SMTP_USERNAME and {PREFIX}SMTP_PASSWORD: set both or neither",
            ),
            (not 1 <= self.smtp_connections <= 64, f"{PREFIX}SMTP_CONNECTIONS: must be between 1 and 64"),
            (
                not 0 < self.retry_base_seconds <= self.retry_max_seconds,
                f"{PREFIX}RETRY_BASE_SECONDS: must be above 0 and at most RETRY_MAX_SECONDS",
            ),
            (not 1 <= self.dispatch_batch <= 100, f"{PREFIX}DISPATCH_BATCH: must be between 1 and 100"),
            (not 1 <= self.max_attempts <= 100, f"{PREFIX}MAX_ATTEMPTS: must be between 1 and 100"),
            (
                self.sender_limit_per_hour < 1 or self.global_limit_per_minute < 1,
                f"{PREFIX}SENDER_LIMIT_PER_HOUR and GLOBAL_LIMIT_PER_MINUTE: must be at least 1",
            ),
            (
                not 1 <= self.reminder_after_days < self.escalation_after_days,
                f"{PREFIX}REMINDER_AFTER_DAYS: must be at least 1 and below ESCALATION_AFTER_DAYS",
            ),
            (not 0 <= self.digest_hour <= 23, f"{PREFIX}DIGEST_HOUR: must be between 0 and 23"),
            (
                self.dispatch_poll_seconds <= 0 or self.housekeeping_seconds <= 0 or self.smtp_timeout_seconds <= 0,
                f"{PREFIX}DISPATCH_POLL_SECONDS, HOUSEKEEPING_SECONDS and SMTP_TIMEOUT_SECONDS: must be above 0",
            ),
            (not self.allowed_sender_domains, f"{PREFIX}ALLOWED_SENDER_DOMAINS: name at least one domain"),
            (
                not self.portal_base_url.startswith(("http://", "https://")) or self.portal_base_url.endswith("/"),
                f"{PREFIX}PORTAL_BASE_URL: must start with http:// or https:// and not end with /",
            ),
        ]


def from_environment() -> Settings:
    return load_settings(Settings, PREFIX)


def require_service_key(settings: Settings) -> str:
    """The key `serve` signs its calls to identity with; a clear error when it is missing."""
    if not settings.service_key:
        raise SettingsError(
            f"{PREFIX}SERVICE_KEY is not set. Notify signs its calls to identity with it; generate one with: python -c"
            " 'from tend_common.service_auth import generate_service_key; print(generate_service_key())'"
        )
    return settings.service_key
