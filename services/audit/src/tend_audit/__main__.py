"""tend-audit: `migrate`, `serve` (consume audit events into the log), `verify` (recompute the chain)."""

from __future__ import annotations

import argparse
import sys

import psycopg
from psycopg_pool import ConnectionPool

from tend_audit import records
from tend_audit.settings import Settings, from_environment
from tend_audit.verify import verify_chain
from tend_common.db import apply_migrations
from tend_common.messaging.consumer import Consumer, Delivery
from tend_common.runtime import ServiceRuntime


def audit_handler(pool: ConnectionPool) -> records.Handler:
    """Appends each event in its own transaction, committed before the consumer acknowledges it."""

    def handle(delivery: Delivery) -> None:
        record = records.parse_delivery(delivery)
        with pool.connection() as conn, conn.transaction(), conn.cursor() as cur:
            records.append(cur, record)

    return handle


def serve(settings: Settings) -> None:
    runtime = ServiceRuntime("audit", settings)
    pool = runtime.open_pool()
    runtime.start_consumer(
        Consumer(
            settings.amqp_url,
            runtime.topology,
            runtime.topology.queue("audit", "records"),
            [records.ROUTING_KEY],
            audit_handler(pool),
        )
    )
    runtime.start_grpc(lambda server: None, service_names=())
    runtime.run()


def verify(settings: Settings) -> int:
    with psycopg.connect(settings.database_url) as conn:
        result = verify_chain(conn)
    if result.ok:
        print(f"audit log verified: {result.records_checked} records")
        return 0
    print(f"audit log FAILED verification at record {result.first_bad_seq}: {result.problem}", file=sys.stderr)
    return 1


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="tend-audit")
    parser.add_argument("command", choices=["migrate", "serve", "verify"])
    args = parser.parse_args(argv)
    settings = from_environment()
    if args.command == "migrate":
        apply_migrations(settings.database_url, "tend_audit.migrations")
    elif args.command == "verify":
        raise SystemExit(verify(settings))
    else:
        serve(settings)


if __name__ == "__main__":
    main()
