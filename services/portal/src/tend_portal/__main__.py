"""Command line: `tend-portal web` serves the portal with gunicorn (threaded workers)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from tend_common.logging import configure_logging
from tend_common.settings import SettingsError
from tend_portal.settings import Settings, load


def _serve_web(settings: Settings) -> None:
    from tend_portal.server import PortalServer

    PortalServer(settings).run()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="tend-portal", description="Tend's staff and student web front.")
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("web", help="serve the portal over HTTP with gunicorn")
    args = parser.parse_args(argv)

    try:
        settings = load()
    except SettingsError as exc:
        print(f"tend-portal: {exc}", file=sys.stderr)
        return 2
    configure_logging("portal", settings.log_level)
    if args.command == "web":
        _serve_web(settings)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
