"""Audit's settings, read from TEND_AUDIT_* variables."""

from __future__ import annotations

from dataclasses import dataclass

from tend_common.settings import ServiceSettings, SettingsError, load_settings

PREFIX = "TEND_AUDIT_"


@dataclass(frozen=True, kw_only=True)
class Settings(ServiceSettings):
    database_url: str = "postgresql://tend_audit@127.0.0.1:5432/tend_audit"
    grpc_port: int = 50055
    metrics_port: int = 9105
    # Identity's gRPC address: its public keys verify actor assertions, and it decides who may query the log.
    identity_target: str = "127.0.0.1:50051"
    # Base64 of the 32-byte Ed25519 private key that signs tree heads and checkpoints, from a secret store. Empty: a
    # key is generated once and kept in audit's database (fine for development; see docs/audit.md).
    signing_key: str = ""
    # A tree head is signed after this many new records, or after this many seconds when fewer arrived.
    tree_head_every_records: int = 1000
    tree_head_every_seconds: float = 60.0
    # Records older than this are pruned by `tend-audit prune` (the seeds' policy keeps data 6 years).
    retention_years: int = 6
    # Events applied per transaction, and how long the consumer waits to fill a batch.
    batch_size: int = 500
    batch_max_wait_ms: int = 50

    def __post_init__(self) -> None:
        problems = []
        if self.tree_head_every_records < 1:
            problems.append(f"{PREFIX}TREE_HEAD_EVERY_RECORDS: must be at least 1")
        if self.tree_head_every_seconds <= 0:
            problems.append(f"{PREFIX}TREE_HEAD_EVERY_SECONDS: must be more than 0")
        if self.retention_years < 1:
            problems.append(f"{PREFIX}RETENTION_YEARS: must be at least 1")
        if not 1 <= self.batch_size <= 5000:
            problems.append(f"{PREFIX}BATCH_SIZE: must be between 1 and 5000")
        if not 0 <= self.batch_max_wait_ms <= 5000:
            problems.append(f"{PREFIX}BATCH_MAX_WAIT_MS: must be between 0 and 5000")
        if problems:
            raise SettingsError("invalid settings: " + "; ".join(problems))


def from_environment() -> Settings:
    return load_settings(Settings, PREFIX)
