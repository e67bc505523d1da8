"""Entry point: `tend-indicators migrate | serve | web | recompute | import-oulad | import-moodle-log |
import-events`."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable
from datetime import date
from pathlib import Path

from tend_common.db import apply_migrations, open_pool
from tend_common.logging import configure_logging
from tend_common.settings import SettingsError
from tend_indicators import answers
from tend_indicators.directory import DirectoryUnavailable, IdentifierKind, IdentityDirectory
from tend_indicators.identity_channel import identity_channel
from tend_indicators.ingest.problems import RejectedInput
from tend_indicators.rules_config import RulesConfigError, load_rules_config
from tend_indicators.service import attendance_handler
from tend_indicators.settings import Settings, from_environment

log = logging.getLogger(__name__)

__all__ = ["attendance_handler", "main"]


def _migrate(settings: Settings, _args: argparse.Namespace) -> None:
    applied = apply_migrations(settings.database_url, "tend_indicators.migrations")
    log.info("migrations up to date", extra={"fields": {"applied": len(applied)}})


def _serve(settings: Settings, _args: argparse.Namespace) -> None:
    from tend_indicators.service import serve

    serve(settings)


def _web(settings: Settings, _args: argparse.Namespace) -> None:
    from tend_indicators.web_server import serve_web

    serve_web(settings)


def _recompute(settings: Settings, args: argparse.Namespace) -> None:
    from tend_indicators.recompute import recompute
    from tend_indicators.service import recompute_options

    pool = open_pool(settings.database_url, name="indicators-recompute")
    with identity_channel(settings) as channel:
        as_of = args.as_of or answers.today(settings.timezone)
        result = recompute(
            pool, IdentityDirectory(channel), load_rules_config(settings.rules_file), recompute_options(settings), as_of
        )
    pool.close()
    print(f"as of {as_of}: {result.students} students, {result.raised} flags raised, {result.withdrawn} withdrawn")


def _import_oulad(settings: Settings, args: argparse.Namespace) -> None:
    from tend_indicators.ingest import oulad

    presentation = oulad.read_presentation(Path(args.directory))
    pool = open_pool(settings.database_url, name="indicators-import")
    with identity_channel(settings) as channel:
        options = oulad.OuladOptions(
            presentation_starts_on=args.starts_on,
            institution_id=args.institution,
            programme_id=args.programme,
            timezone=settings.timezone,
        )
        result = oulad.OuladImporter(presentation, options, IdentityDirectory(channel)).import_all(pool)
    pool.close()
    print(f"{result.clicks} click rows and {result.submissions} submissions read, {result.stored} new records stored")


def _import_moodle_log(settings: Settings, args: argparse.Namespace) -> None:
    from tend_indicators.ingest import moodle_log

    options = moodle_log.MoodleLogOptions(
        module_run_id=args.module_run_id,
        academic_year_starts_on=args.academic_year_starts_on,
        timezone=settings.timezone,
        identifier_column=args.identifier_column,
        identifier_kind=IdentifierKind.from_name(args.identifier_kind),
    )
    pool = open_pool(settings.database_url, name="indicators-import")
    with identity_channel(settings) as channel:
        result = moodle_log.import_log(pool, IdentityDirectory(channel), Path(args.file).read_bytes(), options)
    pool.close()
    print(
        f"{result.rows} rows: {result.stored} new, {result.already_stored} already stored,"
        f" {result.unknown_students} not students, {result.without_user} without a user"
    )


def _import_events(settings: Settings, args: argparse.Namespace) -> None:
    from tend_indicators.ingest import generic

    raw = Path(args.file).read_bytes()
    if args.file.endswith(".csv"):
        parsed = generic.validate(generic.parse_csv(raw.decode("utf-8-sig")), first_line=2, label="line")
    else:
        parsed = generic.validate(generic.parse_json(raw))
    pool = open_pool(settings.database_url, name="indicators-import")
    with identity_channel(settings) as channel:
        result = generic.ingest(pool, IdentityDirectory(channel), args.source, parsed, settings.timezone)
    pool.close()
    print(
        f"{result.received} events: {result.stored} new, {result.already_stored} already stored,"
        f" {len(result.unknown_students)} of unknown students"
    )


Command = Callable[[Settings, argparse.Namespace], None]


def _parser() -> tuple[argparse.ArgumentParser, dict[str, Command]]:
    parser = argparse.ArgumentParser(prog="tend-indicators", description="Tend's indicators service.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    commands.add_parser("migrate", help="apply the database migrations, then exit")
    commands.add_parser("serve", help="consume events, answer gRPC, relay the outbox and recompute, until SIGTERM")
    commands.add_parser("web", help="run the ingest web process (xAPI, events, reference data) until SIGTERM")
    recompute = commands.add_parser("recompute", help="recompute features and flags once")
    recompute.add_argument("--as-of", type=date.fromisoformat, help="the day to compute for (default: today)")
    oulad = commands.add_parser("import-oulad", help="import one OULAD presentation's CSV files")
    oulad.add_argument("directory")
    oulad.add_argument("--starts-on", type=date.fromisoformat, required=True, help="the presentation's first day")
    oulad.add_argument("--institution")
    oulad.add_argument("--programme")
    moodle = commands.add_parser("import-moodle-log", help="import a Moodle course log export (CSV)")
    moodle.add_argument("file")
    moodle.add_argument("--module-run-id", required=True)
    moodle.add_argument("--academic-year-starts-on", type=date.fromisoformat, required=True)
    moodle.add_argument("--identifier-column", default="Username")
    moodle.add_argument("--identifier-kind", default="username", choices=["username", "email", "student_number"])
    events = commands.add_parser("import-events", help="import a file in the generic event format (.json or .csv)")
    events.add_argument("file")
    events.add_argument("--source", required=True, help="the system the events come from, for example library")
    return parser, {
        "migrate": _migrate,
        "serve": _serve,
        "web": _web,
        "recompute": _recompute,
        "import-oulad": _import_oulad,
        "import-moodle-log": _import_moodle_log,
        "import-events": _import_events,
    }


def main(argv: list[str] | None = None) -> int:
    parser, commands = _parser()
    args = parser.parse_args(argv)
    try:
        settings = from_environment()
    except SettingsError as exc:
        print(f"tend-indicators: {exc}", file=sys.stderr)
        return 2
    configure_logging("indicators-web" if args.command == "web" else "indicators", settings.log_level)
    try:
        commands[args.command](settings, args)
    except (SettingsError, RulesConfigError) as exc:
        print(f"tend-indicators: {exc}", file=sys.stderr)
        return 2
    except RejectedInput as exc:
        print(f"tend-indicators: refused, nothing was stored: {exc}", file=sys.stderr)
        return 1
    except DirectoryUnavailable as exc:
        print(f"tend-indicators: {exc}; nothing was stored", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
