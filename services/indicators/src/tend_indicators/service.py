"""The service process (`tend-indicators serve`): the consumers of checkin's attendance and its withdrawals, the
consumer of notify's enquiry status (lines of a case's history), the IndicatorsService gRPC API, the outbox relays
(audit records; flag and case events), and the recompute loop."""

from __future__ import annotations

import logging
from collections.abc import Callable

import grpc
from psycopg_pool import ConnectionPool
from tend.indicators.v1 import indicators_pb2_grpc

from tend_common.grpc_server import start_grpc_server
from tend_common.messaging.consumer import Consumer, Delivery
from tend_common.runtime import ServiceRuntime
from tend_common.service_auth import MethodPolicy, ServiceAuthInterceptor, parse_trusted_services
from tend_indicators import answers, attendance, attendance_withdrawn, enquiry_status
from tend_indicators.access import IdentityVisibility, assertion_verifier
from tend_indicators.case_event_outbox import POLL_SECONDS as CASE_EVENT_POLL_SECONDS
from tend_indicators.case_event_outbox import CaseEventRelay
from tend_indicators.directory import IdentityDirectory
from tend_indicators.grpc_api import SERVICE_NAME, IndicatorsServicer
from tend_indicators.identity_channel import SERVICE, identity_channel
from tend_indicators.ingest.records import DEFAULT_TIMEZONE
from tend_indicators.recompute import RecomputeOptions, recompute
from tend_indicators.recompute_loop import RecomputeLoop
from tend_indicators.rules_config import load_rules_config
from tend_indicators.settings import Settings, require_service_key

log = logging.getLogger(__name__)


def attendance_handler(pool: ConnectionPool, timezone: str = DEFAULT_TIMEZONE) -> attendance.Handler:
    """Applies each attendance event in its own transaction, committed before the consumer acknowledges it."""

    def handle(delivery: Delivery) -> None:
        mark = attendance.parse_attendance(delivery)
        with pool.connection() as conn, conn.transaction(), conn.cursor() as cur:
            stored = attendance.store_attendance(cur, mark, timezone)
        log.debug("attendance applied", extra={"fields": {"event_id": mark.event_id, "stored": stored}})

    return handle


def recompute_options(settings: Settings) -> RecomputeOptions:
    return RecomputeOptions(
        timezone=settings.timezone,
        default_institution=settings.default_institution,
        minimum_cohort_size=settings.minimum_cohort_size,
    )


# Only the portal acts for people towards indicators.
METHOD_POLICY = MethodPolicy(
    {
        f"/{SERVICE_NAME}/{method}": frozenset({"portal"})
        for method in ("ListCases", "GetCase", "GetEngagementSummary", "GetCohortPatterns", "RecordCaseAction")
    }
)


def registration(settings: Settings, pool: ConnectionPool, identity: grpc.Channel) -> Callable[[grpc.Server], None]:
    servicer = IndicatorsServicer(
        pool,
        assertion_verifier(identity),
        IdentityVisibility(identity),
        load_rules_config(settings.rules_file),
        recompute_options(settings),
    )
    return lambda server: indicators_pb2_grpc.add_IndicatorsServiceServicer_to_server(servicer, server)


def serve(settings: Settings) -> None:
    """Runs until SIGTERM or SIGINT; then stops taking calls and events, finishes a recompute in progress, and stops
    the relay."""
    require_service_key(settings)
    trusted = parse_trusted_services(settings.trusted_services)
    runtime = ServiceRuntime(SERVICE, settings)
    config = load_rules_config(settings.rules_file)  # a bad rules file stops start-up with its message
    pool = runtime.open_pool()
    runtime.start_outbox_relay(pool)
    case_events = CaseEventRelay(pool, runtime.publisher(), poll_seconds=CASE_EVENT_POLL_SECONDS)
    case_events.start()
    runtime.shutdown.on_stop("case event relay", case_events.stop)
    identity = identity_channel(settings)
    runtime.shutdown.on_stop("identity channel", identity.close)
    directory = IdentityDirectory(identity)
    options = recompute_options(settings)
    loop = RecomputeLoop(
        pool,
        lambda day: recompute(pool, directory, config, options, day),
        lambda: answers.today(settings.timezone),
        settings.recompute_interval_seconds,
    )
    loop.start()
    runtime.shutdown.on_stop("recompute loop", loop.stop)
    runtime.start_consumer(
        Consumer(
            settings.amqp_url,
            runtime.topology,
            runtime.topology.queue("indicators", "attendance"),
            [attendance.ROUTING_KEY],
            attendance_handler(pool, settings.timezone),
        )
    )
    runtime.start_consumer(
        Consumer(
            settings.amqp_url,
            runtime.topology,
            runtime.topology.queue("indicators", attendance_withdrawn.QUEUE_PURPOSE),
            [attendance_withdrawn.ROUTING_KEY],
            attendance_withdrawn.handler(pool),
        )
    )
    runtime.start_consumer(
        Consumer(
            settings.amqp_url,
            runtime.topology,
            runtime.topology.queue(SERVICE, enquiry_status.QUEUE_PURPOSE),
            list(enquiry_status.ROUTING_KEYS),
            enquiry_status.handler(pool, settings.timezone),
        )
    )
    server = start_grpc_server(
        registration(settings, pool, identity),
        [SERVICE_NAME],
        settings.grpc_port,
        host=settings.listen_host,
        interceptors=[ServiceAuthInterceptor(SERVICE, trusted, METHOD_POLICY)],
    )
    runtime.shutdown.on_stop("grpc server", server.stop)
    runtime.run()
