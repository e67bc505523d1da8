"""Runs identity: database pool, outbox relay to RabbitMQ, gRPC server; stopped in reverse order on SIGTERM."""

from __future__ import annotations

import logging
from datetime import timedelta

from psycopg_pool import ConnectionPool

from tend_common.db import open_pool
from tend_common.grpc_server import start_grpc_server
from tend_common.lifecycle import Shutdown
from tend_common.logging import configure_logging
from tend_common.messaging.outbox import OutboxRelay, add_to_outbox
from tend_common.messaging.publisher import ConfirmingPublisher
from tend_common.messaging.topology import Topology
from tend_common.metrics import start_metrics_endpoint
from tend_common.service_auth import RefusalRecorder, server_interceptors
from tend_identity import SERVICE, audit_events
from tend_identity.audit_writer import AuditWriter
from tend_identity.callers import METHOD_POLICY
from tend_identity.facts_cache import FactsCache
from tend_identity.grpc_service import SERVICE_NAME, IdentityServicer, register
from tend_identity.model import Resource
from tend_identity.secret_wrapping import SecretWrapping, rewrap_stored_secrets, wrapping_from_settings
from tend_identity.settings import Settings
from tend_identity.signing import Keyring

log = logging.getLogger(__name__)


def refused_call_recorder(pool: ConnectionPool) -> RefusalRecorder:
    """Puts every refused service call (checkin asking to resolve a pseudonym, say) on the audit trail."""

    def record(caller: str, method: str, reason: str) -> None:
        event = audit_events.recorded_for_service(
            caller or "unauthenticated", "service_call", Resource("grpc_method", method), reason, False, ""
        )
        with pool.connection() as conn, conn.transaction(), conn.cursor() as cur:
            add_to_outbox(cur, event)

    return record


def prepare_stored_secrets(pool: ConnectionPool, wrapping: SecretWrapping) -> None:
    """Checks that every stored secret unwraps and rewraps those not under the current key-encryption key; raises
    SecretWrappingError (a wrong or missing key) before anything is served."""
    with pool.connection() as conn:
        outcome = rewrap_stored_secrets(conn, wrapping)
    log.info(
        "stored secrets checked",
        extra={"fields": {"checked": outcome.checked, "rewrapped": outcome.rewrapped, "kek": wrapping.current_id}},
    )


def serve(settings: Settings) -> None:
    """Blocks until SIGTERM or SIGINT. The gRPC server stops first (calls in flight finish), then the relay (its
    last batch is confirmed or left in the outbox for next time), then the publisher and the pool."""
    configure_logging(SERVICE, settings.log_level)
    wrapping = wrapping_from_settings(settings)
    shutdown = Shutdown()
    shutdown.install_signal_handlers()
    start_metrics_endpoint(settings.metrics_port, settings.listen_host)

    pool = open_pool(settings.database_url, name=SERVICE)
    shutdown.on_stop("database pool", pool.close)
    try:
        prepare_stored_secrets(pool, wrapping)
    except Exception:
        pool.close()
        raise
    publisher = ConfirmingPublisher(settings.amqp_url, Topology(settings.amqp_namespace), producer=SERVICE)
    shutdown.on_stop("publisher", publisher.close)
    relay = OutboxRelay(pool, publisher)
    relay.start()
    shutdown.on_stop("outbox relay", relay.stop)

    keyring = Keyring(pool, retired_kept=timedelta(seconds=settings.longest_token_ttl_seconds), wrapping=wrapping)
    keyring.current()  # creates the first key now rather than on the first request
    # Stopped after the gRPC server (calls in flight get their records committed), before the relay.
    audit_writer = AuditWriter(settings.database_url, settings.audit_wait_seconds).start()
    shutdown.on_stop("audit writer", audit_writer.stop)
    facts_cache = FactsCache(settings.database_url).start()
    shutdown.on_stop("facts cache", facts_cache.stop)
    servicer = IdentityServicer(pool, keyring, settings, audit_writer=audit_writer, facts_cache=facts_cache)
    interceptors = server_interceptors(
        SERVICE, settings.trusted_services, METHOD_POLICY, on_refusal=refused_call_recorder(pool)
    )
    server = start_grpc_server(
        register(servicer), [SERVICE_NAME], settings.grpc_port, host=settings.listen_host, interceptors=interceptors
    )
    shutdown.on_stop("grpc server", server.stop)

    log.info("service started", extra={"fields": {"grpc_port": server.port, "metrics_port": settings.metrics_port}})
    shutdown.run_until_signalled()
    log.info("service stopped")
