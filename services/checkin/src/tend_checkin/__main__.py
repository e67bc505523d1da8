"""Entry point: `tend-checkin migrate | serve | web`."""

from __future__ import annotations

import argparse
import logging
import sys

from tend_checkin.settings import Settings, from_environment
from tend_common.db import apply_migrations
from tend_common.logging import configure_logging
from tend_common.settings import SettingsError

log = logging.getLogger(__name__)


def _migrate(settings: Settings) -> None:
    applied = apply_migrations(settings.database_url, "tend_checkin.migrations")
    log.info("migrations up to date", extra={"fields": {"applied": len(applied)}})


def _serve(settings: Settings) -> None:
    from tend_checkin.service import serve

    serve(settings)


def _web(settings: Settings) -> None:
    from tend_checkin.web_server import serve_web

    serve_web(settings)


COMMANDS = {
    "migrate": (_migrate, "apply the database migrations, then exit"),
    "serve": (_serve, "run the gRPC API and the outbox relay until SIGTERM"),
    "web": (_web, "run the student check-in pages with gunicorn until SIGTERM"),
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="tend-checkin", description="Tend's check-in service.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, (_run, help_text) in COMMANDS.items():
        commands.add_parser(name, help=help_text)
    args = parser.parse_args(argv)
    try:
        settings = from_environment()
    except SettingsError as exc:
        print(f"tend-checkin: {exc}", file=sys.stderr)
        return 2
    configure_logging("checkin-web" if args.command == "web" else "checkin", settings.log_level)
    run, _help = COMMANDS[args.command]
    try:
        run(settings)
    except SettingsError as exc:
        print(f"tend-checkin: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
