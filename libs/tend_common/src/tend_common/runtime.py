"""The start-up and shutdown sequence a back-end service process shares: logging, metrics, database pool,
publisher, outbox relay, consumers and gRPC server, stopped in reverse order on SIGTERM."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence

import grpc
from psycopg_pool import ConnectionPool

from tend_common.db import open_pool
from tend_common.grpc_server import start_grpc_server
from tend_common.lifecycle import Shutdown
from tend_common.logging import configure_logging
from tend_common.messaging.consumer import Consumer
from tend_common.messaging.outbox import OutboxRelay
from tend_common.messaging.publisher import ConfirmingPublisher
from tend_common.messaging.topology import Topology
from tend_common.metrics import start_metrics_endpoint
from tend_common.service_auth import MethodPolicy, RefusalRecorder, channel_to, server_interceptors
from tend_common.settings import ServiceSettings

log = logging.getLogger(__name__)


class ServiceRuntime:
    """Starts a service's components one by one; `run` then blocks until SIGTERM or SIGINT and stops them, the
    intake (gRPC server, consumers) first and the database last, so work in flight finishes."""

    def __init__(self, service: str, settings: ServiceSettings) -> None:
        configure_logging(service, settings.log_level)
        self.service = service
        self.settings = settings
        self.topology = Topology(settings.amqp_namespace)
        self.shutdown = Shutdown()

    def open_pool(self, max_size: int = 10) -> ConnectionPool:
        pool = open_pool(self.settings.database_url, max_size=max_size, name=self.service)
        self.shutdown.on_stop("database pool", pool.close)
        return pool

    def publisher(self) -> ConfirmingPublisher:
        publisher = ConfirmingPublisher(self.settings.amqp_url, self.topology, producer=self.service)
        self.shutdown.on_stop("publisher", publisher.close)
        return publisher

    def start_outbox_relay(self, pool: ConnectionPool) -> OutboxRelay:
        relay = OutboxRelay(pool, self.publisher())
        relay.start()
        self.shutdown.on_stop("outbox relay", relay.stop)
        return relay

    def start_consumer(self, consumer: Consumer) -> Consumer:
        consumer.declare()
        consumer.start()
        self.shutdown.on_stop(f"consumer {consumer.queue}", consumer.stop)
        return consumer

    def start_grpc(
        self,
        register: Callable[[grpc.Server], None],
        service_names: Sequence[str],
        policy: MethodPolicy | None = None,
        on_refusal: RefusalRecorder | None = None,
    ) -> None:
        """Starts the gRPC server; with a `policy`, calling services must authenticate and keep to it."""
        interceptors = (
            server_interceptors(self.service, self.settings.trusted_services, policy, on_refusal)
            if policy is not None
            else []
        )
        server = start_grpc_server(
            register, service_names, self.settings.grpc_port, host=self.settings.listen_host, interceptors=interceptors
        )
        self.shutdown.on_stop("grpc server", server.stop)

    def channel_to(self, target: str, audience: str) -> grpc.Channel:
        """A channel to another service that carries this service's credential."""
        return channel_to(target, audience, self.service, self.settings.service_key)

    def run(self) -> None:
        self.shutdown.install_signal_handlers()
        start_metrics_endpoint(self.settings.metrics_port, host=self.settings.listen_host)
        log.info("service started", extra={"fields": {"grpc_port": self.settings.grpc_port}})
        self.shutdown.run_until_signalled()
        log.info("service stopped")
