"""Entry point: `tend-notify migrate | serve | load-templates FILE | smtp-sink`."""

from __future__ import annotations

import argparse
import logging
import sys

from tend_common.db import apply_migrations
from tend_common.logging import configure_logging
from tend_common.settings import SettingsError
from tend_notify.settings import Settings, from_environment

log = logging.getLogger(__name__)


def _migrate(settings: Settings, _args: argparse.Namespace) -> None:
    applied = apply_migrations(settings.database_url, "tend_notify.migrations")
    log.info("migrations up to date", extra={"fields": {"applied": len(applied)}})


def _serve(settings: Settings, _args: argparse.Namespace) -> None:
    from tend_notify.service import serve

    serve(settings)


def _load_templates(settings: Settings, args: argparse.Namespace) -> None:
    from pathlib import Path

    from tend_notify.template_loading import TemplatesRejected, load_file

    try:
        loaded = load_file(settings.database_url, Path(args.file), settings.allowed_sender_domains)
    except TemplatesRejected as exc:
        print(f"tend-notify: {args.file} was not loaded; nothing changed:", file=sys.stderr)
        for problem in exc.problems:
            print(f"  {problem}", file=sys.stderr)
        raise SystemExit(1) from None
    print(f"loaded {len(loaded.institutions)} institutions and {len(loaded.templates)} templates")


def _smtp_sink(settings: Settings, args: argparse.Namespace) -> None:
    from pathlib import Path

    from tend_notify.sink import run_sink

    run_sink(args.host, args.port, Path(args.directory) if args.directory else None)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="tend-notify", description="Tend's notify service.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    commands.add_parser("migrate", help="apply the database migrations, then exit")
    commands.add_parser("serve", help="run the API, the intake and the sending threads until SIGTERM")
    loading = commands.add_parser("load-templates", help="store institutions' templates from a JSON file")
    loading.add_argument("file")
    sink = commands.add_parser("smtp-sink", help="run a local SMTP server that keeps every message (test mode)")
    sink.add_argument("--host", default="127.0.0.1")
    sink.add_argument("--port", type=int, default=2525)
    sink.add_argument("--directory", default="", help="write each message here as <Message-ID>.eml")
    args = parser.parse_args(argv)
    try:
        settings = from_environment()
    except SettingsError as exc:
        print(f"tend-notify: {exc}", file=sys.stderr)
        return 2
    configure_logging("notify", settings.log_level)
    run = {"migrate": _migrate, "serve": _serve, "load-templates": _load_templates, "smtp-sink": _smtp_sink}[
        args.command
    ]
    try:
        run(settings, args)
    except SettingsError as exc:
        print(f"tend-notify: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
