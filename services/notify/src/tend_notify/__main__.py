"""tend-notify: `migrate` applies the database migrations; `serve` runs the service.

Sending supportive enquiries is not built yet: the process stands up with its database, health and metrics so the
suite's deployment, probes and shutdown are exercised from the start.
"""

from __future__ import annotations

import argparse

from tend_common.db import apply_migrations
from tend_common.runtime import ServiceRuntime
from tend_notify.settings import Settings, from_environment


def serve(settings: Settings) -> None:
    runtime = ServiceRuntime("notify", settings)
    runtime.open_pool(max_size=2)
    runtime.start_grpc(lambda server: None, service_names=())
    runtime.run()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="tend-notify")
    parser.add_argument("command", choices=["migrate", "serve"])
    args = parser.parse_args(argv)
    settings = from_environment()
    if args.command == "migrate":
        apply_migrations(settings.database_url, "tend_notify.migrations")
    else:
        serve(settings)


if __name__ == "__main__":
    main()
