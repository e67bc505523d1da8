"""`make demo`: starts every service as a local process against PostgreSQL, Redis and RabbitMQ on their standard
ports, with a demo university loaded and a few weeks of its engagement sent to indicators (so tutors have cases and
students their engagement), and stops them all on Ctrl-C.

Each service gets its own database and its own database role (tend_<service>), as in production.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
from pathlib import Path

import psycopg
from psycopg import sql

from tend_testing.demo_activity import load_demo_activity
from tend_testing.suite import BACK_END_SERVICES, INGEST_SOURCE, Suite, SuiteConfig, SuitePorts, run_command

ROOT = Path(__file__).resolve().parent.parent
ADMIN_DSN = os.environ.get("TEND_DEMO_PG_ADMIN_DSN", "postgresql://postgres@127.0.0.1:5432/postgres")


def fresh_database(service: str) -> str:
    """Creates role tend_<service> if missing and the database tend_<service> anew (the demo university is
    disposable: each run starts from the same data, whatever an earlier version of the demo left); returns the DSN."""
    name = f"tend_{service}"
    with psycopg.connect(ADMIN_DSN, autocommit=True) as conn:
        if conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (name,)).fetchone() is None:
            conn.execute(sql.SQL("CREATE ROLE {} LOGIN").format(sql.Identifier(name)))
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
        conn.execute(sql.SQL("CREATE DATABASE {} OWNER {}").format(sql.Identifier(name), sql.Identifier(name)))
    return ADMIN_DSN.rsplit("/", 1)[0].replace("postgres@", f"{name}@", 1) + f"/{name}"


def main() -> int:
    config = SuiteConfig(
        ports=SuitePorts.standard(),
        databases={service: fresh_database(service) for service in BACK_END_SERVICES},
        amqp_url=os.environ.get("TEND_DEMO_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/%2F"),
        amqp_namespace="tend",
        redis_url=os.environ.get("TEND_DEMO_REDIS_URL", "redis://127.0.0.1:6379/0"),
        redis_prefix="tend:checkin:",
        # The demo sends no real e-mail: notify writes each message as an .eml file here instead.
        extra_settings={"notify": {"DELIVERY_MODE": "mailbox", "MAILBOX_DIR": str(ROOT / ".demo" / "mailbox")}},
    )
    for service in BACK_END_SERVICES:
        run_command(config, service, "migrate")
    logins = run_command(config, "identity", "load-demo")
    log_dir = ROOT / ".demo" / "logs"
    log_dir.mkdir(parents=True, exist_ok=True)
    suite = Suite(config, log_dir)
    stop = threading.Event()
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        suite.start()
        print(logins)
        print(f"Tend is running. Portal: {config.portal_url}   (check-in host: {config.checkin_url})")
        print(
            f"Indicators ingest (xAPI at /xapi/statements, /events, /reference): {config.indicators_ingest_url},"
            f" HTTP Basic user {INGEST_SOURCE!r}, password {config.ingest_source_key!r}"
        )
        print(f"Service logs: {log_dir}. E-mails notify sends: {ROOT / '.demo' / 'mailbox'}.")
        sys.stdout.flush()
        try:
            print(load_demo_activity(config).summary())
        except (RuntimeError, OSError) as exc:
            # The services are up and usable without it: say what went wrong and keep them running.
            print(f"Demo activity was not loaded, so cases and engagement pages stay empty: {exc}", file=sys.stderr)
        print("Press Ctrl-C to stop.")
        sys.stdout.flush()
        while not stop.wait(1.0):
            pass
    finally:
        print("Stopping...")
        suite.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
