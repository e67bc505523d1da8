"""The whole suite as real processes: every service started with its own database, a shared broker namespace and a
Redis prefix, waited on until healthy. Used by the end-to-end tests and by `make demo`."""

from __future__ import annotations

import base64
import secrets
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import grpc

from tend_common.service_auth import channel_to, generate_service_key, public_key_text
from tend_testing.processes import ServiceProcess, free_port

BACK_END_SERVICES = ("identity", "checkin", "indicators", "notify", "audit")
ALL_SERVICES = (*BACK_END_SERVICES, "portal")
# The source name a demo or test sends data to indicators' ingest web process as.
INGEST_SOURCE = "demo"


def _new_service_keys() -> dict[str, str]:
    return {service: generate_service_key() for service in ALL_SERVICES}


@dataclass(frozen=True)
class SuitePorts:
    """Where each process listens."""

    identity_grpc: int
    checkin_grpc: int
    checkin_http: int
    indicators_grpc: int
    notify_grpc: int
    audit_grpc: int
    portal_http: int
    metrics: Mapping[str, int] = field(default_factory=dict)
    # Indicators' ingest web process (xAPI statements, generic events, reference data).
    indicators_http: int = 8003

    @classmethod
    def free(cls) -> SuitePorts:
        return cls(
            free_port(), free_port(), free_port(), free_port(), free_port(), free_port(), free_port(),
            indicators_http=free_port(),
        )  # fmt: skip

    @classmethod
    def standard(cls) -> SuitePorts:
        metrics = {"identity": 9101, "checkin": 9102, "indicators": 9103, "notify": 9104, "audit": 9105}
        return cls(50051, 50052, 8001, 50053, 50054, 50055, 8000, metrics, indicators_http=8003)

    def grpc(self, service: str) -> int:
        port: int = getattr(self, f"{service}_grpc")
        return port


@dataclass(frozen=True)
class SuiteConfig:
    """Everything that differs between one running suite and another."""

    ports: SuitePorts
    databases: Mapping[str, str]  # service name -> DSN
    amqp_url: str
    amqp_namespace: str
    redis_url: str
    redis_prefix: str
    secret_key: str = field(default_factory=lambda: secrets.token_urlsafe(32))
    # Each service's own signing key for service-to-service calls; every service trusts every other's public key
    # and its own method policy decides what each caller may do.
    service_keys: Mapping[str, str] = field(default_factory=_new_service_keys)
    # Identity's key-encryption key (base64 of 32 random bytes), so its stored secrets are wrapped as in production.
    identity_key_encryption_key: str = field(default_factory=lambda: base64.b64encode(secrets.token_bytes(32)).decode())
    # Further settings by service, without the TEND_<SERVICE>_ prefix (the demo's local mailbox, for instance).
    extra_settings: Mapping[str, Mapping[str, str]] = field(default_factory=dict)

    @property
    def portal_url(self) -> str:
        return f"http://127.0.0.1:{self.ports.portal_http}"

    @property
    def checkin_url(self) -> str:
        return f"http://127.0.0.1:{self.ports.checkin_http}"

    @property
    def indicators_ingest_url(self) -> str:
        return f"http://127.0.0.1:{self.ports.indicators_http}"

    @property
    def ingest_source_key(self) -> str:
        """The key of the source "demo" on indicators' ingest web process (HTTP Basic: demo / this key)."""
        return self.secret_key + "-ingest"

    def channel_as(self, caller: str, service: str) -> grpc.Channel:
        """A gRPC channel to `service` carrying `caller`'s service credential, as that service would open it."""
        return channel_to(f"127.0.0.1:{self.ports.grpc(service)}", service, caller, self.service_keys[caller])

    def environment(self, service: str) -> dict[str, str]:
        """The TEND_<SERVICE>_* variables of one service."""
        ports = self.ports
        prefix = f"TEND_{service.upper()}_"
        env: dict[str, str] = {
            "SERVICE_KEY": self.service_keys[service],
            "TRUSTED_SERVICES": ",".join(
                f"{other}={public_key_text(key)}" for other, key in self.service_keys.items() if other != service
            ),
        }
        if service in BACK_END_SERVICES:
            env.update(
                {
                    "DATABASE_URL": self.databases[service],
                    "AMQP_URL": self.amqp_url,
                    "AMQP_NAMESPACE": self.amqp_namespace,
                    "GRPC_PORT": str(ports.grpc(service)),
                    "METRICS_PORT": str(ports.metrics.get(service, 0)),
                    "IDENTITY_TARGET": f"127.0.0.1:{ports.identity_grpc}",
                }
            )
        if service == "identity":
            env["KEY_ENCRYPTION_KEY"] = self.identity_key_encryption_key
        if service == "checkin":
            env.update(
                {
                    "REDIS_URL": self.redis_url,
                    "REDIS_PREFIX": self.redis_prefix,
                    "HTTP_PORT": str(ports.checkin_http),
                    "PUBLIC_BASE_URL": self.checkin_url,
                    "PORTAL_BASE_URL": self.portal_url,
                    "SECRET_KEY": self.secret_key + "-checkin",
                }
            )
        if service == "indicators":
            env.update(
                {
                    "HTTP_PORT": str(ports.indicators_http),
                    "SOURCE_CREDENTIALS": f"{INGEST_SOURCE}:{self.ingest_source_key}",
                    "WEB_WORKERS": "1",
                    "WEB_THREADS": "2",
                }
            )
        if service == "portal":
            env.update(
                {
                    "HTTP_PORT": str(ports.portal_http),
                    "PUBLIC_BASE_URL": self.portal_url,
                    "IDENTITY_TARGET": f"127.0.0.1:{ports.identity_grpc}",
                    "CHECKIN_TARGET": f"127.0.0.1:{ports.checkin_grpc}",
                    "INDICATORS_TARGET": f"127.0.0.1:{ports.indicators_grpc}",
                    "NOTIFY_TARGET": f"127.0.0.1:{ports.notify_grpc}",
                    "AUDIT_TARGET": f"127.0.0.1:{ports.audit_grpc}",
                    "CHECKIN_BASE_URL": self.checkin_url,
                    "SECRET_KEY": self.secret_key + "-portal",
                }
            )
        env.update(self.extra_settings.get(service, {}))
        return {prefix + name: value for name, value in env.items()}


def run_command(config: SuiteConfig, service: str, *args: str) -> str:
    """Runs a one-off command of a service (migrate, load-demo) and returns its output; raises if it fails."""
    result = subprocess.run(
        [sys.executable, "-m", f"tend_{service}", *args],
        env=_env(config, service),
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )
    if result.returncode != 0:
        raise RuntimeError(f"tend-{service} {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}")
    return result.stdout


def _env(config: SuiteConfig, service: str) -> dict[str, str]:
    import os

    return {**os.environ, **config.environment(service)}


class Suite:
    """The running processes of one suite."""

    def __init__(self, config: SuiteConfig, log_dir: Path) -> None:
        self.config = config
        self._log_dir = log_dir
        self.processes: dict[str, ServiceProcess] = {}

    def _process(self, name: str, service: str, role: str) -> ServiceProcess:
        command = [sys.executable, "-m", f"tend_{service}", role]
        return ServiceProcess(name, command, self.config.environment(service), self._log_dir)

    def start_process(self, name: str) -> ServiceProcess:
        """Starts (or restarts) one process by name and waits until it is healthy."""
        ports = self.config.ports
        if name in BACK_END_SERVICES:
            process = self._process(name, name, "serve").start().wait_grpc(ports.grpc(name))
        elif name == "checkin-web":
            process = self._process(name, "checkin", "web").start().wait_http(ports.checkin_http)
        elif name == "indicators-web":
            process = self._process(name, "indicators", "web").start().wait_http(ports.indicators_http)
        elif name == "portal":
            process = self._process(name, "portal", "web").start().wait_http(ports.portal_http)
        else:
            raise ValueError(f"no process called {name}")
        self.processes[name] = process
        return process

    def start(self) -> Suite:
        # identity first: the others fetch its keys and ask it for decisions.
        for name in ("identity", "audit", "indicators", "indicators-web", "notify", "checkin", "checkin-web", "portal"):
            self.start_process(name)
        return self

    def stop(self) -> None:
        for process in reversed(list(self.processes.values())):
            process.terminate()

    def logs(self, name: str) -> str:
        return self.processes[name].read_log()
