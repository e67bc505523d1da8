"""The service process: the NotifyService API, the intake of EnquiryRequested, the consumer of indicators'
CaseUpdated, the sending threads, the outbox relay and the housekeeping (abandoned attempts, follow-ups), started in
that dependency order and stopped in reverse."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

import pika

from tend_common.grpc_server import start_grpc_server
from tend_common.identity_access import IdentityAccessChecker
from tend_common.messaging.consumer import Consumer
from tend_common.messaging.topology import declare_consumer_queue
from tend_common.runtime import ServiceRuntime
from tend_common.service_auth import (
    MethodPolicy,
    ServiceAuthInterceptor,
    ServiceTokenSigner,
    authenticated_channel,
    parse_trusted_services,
)
from tend_notify import case_updates, follow_up, intake
from tend_notify.access import assertion_verifier
from tend_notify.contacts import IdentityContacts
from tend_notify.dispatcher import Dispatcher, utc_now
from tend_notify.events import (
    CASE_STATUS_CONSUMER,
    CASE_STATUS_ROUTING_KEYS,
    CASE_UPDATED,
    ENQUIRY_REQUESTED,
    SERVICE,
)
from tend_notify.grpc_api import SERVICE_NAME, NotifyServicer, register
from tend_notify.guards import RateLimiter, redis_client
from tend_notify.recovery import ProcessLease, recover_abandoned_attempts
from tend_notify.settings import Settings, require_service_key
from tend_notify.transport import transport_factory

log = logging.getLogger(__name__)

IDENTITY = "identity"
# Only the portal acts for people towards notify.
METHOD_POLICY = MethodPolicy(
    {
        f"/{SERVICE_NAME}/{method}": frozenset({"portal"})
        for method in (
            "PreviewEnquiry",
            "RequestEnquiry",
            "GetEnquiryStatus",
            "ResolveUncertainDelivery",
            "RecordEnquiryAnswered",
        )
    }
)


class Housekeeping:
    """Every `interval` seconds: keep the process lease, resolve abandoned attempts, queue due follow-ups."""

    def __init__(self, interval: float, steps: list[tuple[str, Callable[[], object]]]) -> None:
        self._interval = interval
        self._steps = steps
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name="housekeeping", daemon=True)

    def run_once(self) -> None:
        for name, step in self._steps:
            try:
                step()
            except Exception as exc:
                log.exception("housekeeping step failed", extra={"fields": {"step": name, "error": type(exc).__name__}})

    def _run(self) -> None:
        while not self._stopping.wait(self._interval):
            self.run_once()

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stopping.set()
        self._thread.join(30)


def declare_case_status_queue(settings: Settings, runtime: ServiceRuntime) -> None:
    """The queue status events go to, declared so none is lost or blocks the outbox before indicators consumes it."""
    connection = pika.BlockingConnection(pika.URLParameters(settings.amqp_url))
    try:
        declare_consumer_queue(
            connection.channel(),
            runtime.topology,
            runtime.topology.queue(*CASE_STATUS_CONSUMER),
            CASE_STATUS_ROUTING_KEYS,
        )
    finally:
        connection.close()


def serve(settings: Settings) -> None:
    """Runs until SIGTERM or SIGINT; then stops taking calls and events, and lets each sending thread finish and
    record the message in its hands."""
    signer = ServiceTokenSigner(SERVICE, require_service_key(settings))
    trusted = parse_trusted_services(settings.trusted_services)
    runtime = ServiceRuntime(SERVICE, settings)
    lease = ProcessLease(settings.database_url)
    runtime.shutdown.on_stop("process lease", lease.release)
    pool = runtime.open_pool(max_size=settings.smtp_connections + 6)
    identity_channel = authenticated_channel(settings.identity_target, signer, IDENTITY)
    runtime.shutdown.on_stop("identity channel", identity_channel.close)
    contacts = IdentityContacts(identity_channel)
    client = redis_client(settings.redis_url)
    runtime.shutdown.on_stop("redis", client.close)
    limiter = RateLimiter(client, settings.redis_prefix, clock=time.time)

    declare_case_status_queue(settings, runtime)
    runtime.start_outbox_relay(pool)
    recover_abandoned_attempts(pool, lease.key, settings.max_attempts, utc_now())

    dispatcher = Dispatcher(pool, settings, contacts, limiter, lease.key)
    dispatcher.start(transport_factory(settings))
    runtime.shutdown.on_stop("sending threads", dispatcher.stop)
    followups = follow_up.FollowUps(pool, settings, contacts)
    housekeeping = Housekeeping(
        settings.housekeeping_seconds,
        [
            ("lease", lease.healthy),
            (
                "abandoned attempts",
                lambda: recover_abandoned_attempts(pool, lease.key, settings.max_attempts, utc_now()),
            ),
            ("follow-ups", lambda: followups.run(utc_now())),
        ],
    )
    housekeeping.start()
    runtime.shutdown.on_stop("housekeeping", housekeeping.stop)
    runtime.start_consumer(
        Consumer(
            settings.amqp_url,
            runtime.topology,
            runtime.topology.queue(SERVICE, intake.QUEUE_PURPOSE),
            [ENQUIRY_REQUESTED],
            intake.enquiry_handler(pool, on_queued=dispatcher.wake),
        )
    )
    runtime.start_consumer(
        Consumer(
            settings.amqp_url,
            runtime.topology,
            runtime.topology.queue(SERVICE, case_updates.QUEUE_PURPOSE),
            [CASE_UPDATED],
            case_updates.case_update_handler(pool),
        )
    )
    servicer = NotifyServicer(
        pool, settings, assertion_verifier(identity_channel), IdentityAccessChecker(identity_channel), contacts, limiter
    )
    server = start_grpc_server(
        register(servicer),
        [SERVICE_NAME],
        settings.grpc_port,
        host=settings.listen_host,
        interceptors=[ServiceAuthInterceptor(SERVICE, trusted, METHOD_POLICY)],
    )
    runtime.shutdown.on_stop("grpc server", server.stop)
    runtime.run()
