"""tend-indicators: `migrate` applies the database migrations; `serve` consumes events and answers gRPC."""

from __future__ import annotations

import argparse
import logging

from psycopg_pool import ConnectionPool

from tend_common.db import apply_migrations
from tend_common.messaging.consumer import Consumer, Delivery
from tend_common.runtime import ServiceRuntime
from tend_indicators import attendance
from tend_indicators.settings import Settings, from_environment

log = logging.getLogger(__name__)


def attendance_handler(pool: ConnectionPool) -> attendance.Handler:
    """Applies each attendance event in its own transaction, committed before the consumer acknowledges it."""

    def handle(delivery: Delivery) -> None:
        mark = attendance.parse_attendance(delivery)
        with pool.connection() as conn, conn.transaction(), conn.cursor() as cur:
            stored = attendance.store_attendance(cur, mark)
        log.debug("attendance applied", extra={"fields": {"event_id": mark.event_id, "stored": stored}})

    return handle


def serve(settings: Settings) -> None:
    runtime = ServiceRuntime("indicators", settings)
    pool = runtime.open_pool()
    runtime.start_consumer(
        Consumer(
            settings.amqp_url,
            runtime.topology,
            runtime.topology.queue("indicators", "attendance"),
            [attendance.ROUTING_KEY],
            attendance_handler(pool),
        )
    )
    runtime.start_grpc(lambda server: None, service_names=())
    runtime.run()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="tend-indicators")
    parser.add_argument("command", choices=["migrate", "serve"])
    args = parser.parse_args(argv)
    settings = from_environment()
    if args.command == "migrate":
        apply_migrations(settings.database_url, "tend_indicators.migrations")
    else:
        serve(settings)


if __name__ == "__main__":
    main()
