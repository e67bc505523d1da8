"""The gRPC service process: the CheckinService API, and the outbox relay that publishes its audit events."""

from __future__ import annotations

from collections.abc import Callable

import grpc
import pika
from psycopg_pool import ConnectionPool
from tend.checkin.v1 import checkin_pb2, checkin_pb2_grpc

from tend_checkin import events
from tend_checkin.access import checkin_token_verifier
from tend_checkin.grpc_api import SERVICE_NAME, CheckinServicer
from tend_checkin.settings import Settings
from tend_common.identity_access import IdentityAccessChecker
from tend_common.messaging.topology import Topology, declare_consumer_queue
from tend_common.runtime import ServiceRuntime
from tend_common.service_auth import MethodPolicy

SERVICE = "checkin"


def registration(
    settings: Settings, pool: ConnectionPool, identity_channel: grpc.Channel
) -> Callable[[grpc.Server], None]:
    """Adds the CheckinService, talking to identity over `identity_channel`, to a gRPC server."""
    servicer = CheckinServicer(
        pool, checkin_token_verifier(identity_channel), IdentityAccessChecker(identity_channel), settings
    )
    return lambda server: checkin_pb2_grpc.add_CheckinServiceServicer_to_server(servicer, server)


def declare_withdrawal_queue(settings: Settings) -> None:
    """Declares the durable queue indicators will consume AttendanceWithdrawn from, under the name and arguments
    indicators' consumer declares it with, so withdrawals are kept for it (and the outbox, which publishes with the
    mandatory flag, is never stuck on them) until indicators consumes them. Declaring is idempotent."""
    topology = Topology(settings.amqp_namespace)
    connection = pika.BlockingConnection(pika.URLParameters(settings.amqp_url))
    try:
        queue = topology.queue("indicators", "attendance_withdrawn")
        declare_consumer_queue(connection.channel(), topology, queue, [events.ATTENDANCE_WITHDRAWN])
    finally:
        connection.close()


# Staff actions reach checkin only through the portal, acting for a signed-in person.
METHOD_POLICY = MethodPolicy(
    {
        f"/{SERVICE_NAME}/{method.name}": frozenset({"portal"})
        for method in checkin_pb2.DESCRIPTOR.services_by_name["CheckinService"].methods
    }
)


def serve(settings: Settings) -> None:
    """Runs until SIGTERM or SIGINT; then stops taking calls, lets those in flight finish, and stops the relay."""
    runtime = ServiceRuntime(SERVICE, settings)
    declare_withdrawal_queue(settings)
    pool = runtime.open_pool()
    runtime.start_outbox_relay(pool)
    identity_channel = runtime.channel_to(settings.identity_target, "identity")
    runtime.shutdown.on_stop("identity channel", identity_channel.close)
    runtime.start_grpc(registration(settings, pool, identity_channel), [SERVICE_NAME], policy=METHOD_POLICY)
    runtime.run()
