"""tend-identity: `migrate`, `serve`, `load-demo` and `rotate-signing-key`."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from datetime import timedelta

import psycopg

from tend_common.db import apply_migrations, open_pool
from tend_identity import demo, passwords
from tend_identity.settings import Settings, load
from tend_identity.signing import Keyring

MIGRATIONS = "tend_identity.migrations"


def _migrate(settings: Settings, _args: argparse.Namespace) -> int:
    applied = apply_migrations(settings.database_url, MIGRATIONS)
    print(f"applied {len(applied)} migration(s)" + (": " + ", ".join(applied) if applied else ""))
    return 0


def _serve(settings: Settings, _args: argparse.Namespace) -> int:
    from tend_identity.server import serve

    serve(settings)
    return 0


def _load_demo(settings: Settings, args: argparse.Namespace) -> int:
    university = demo.build_demo(args.seed)
    # One hash for the whole load: every demo account shares the demo password, and argon2 is slow on purpose.
    password_hash = passwords.hash_password(demo.DEMO_PASSWORD)
    with psycopg.connect(settings.database_url) as conn:
        demo.load_demo(conn, university, password_hash)
    print(demo.format_logins(university.logins))
    return 0


def _rotate_signing_key(settings: Settings, _args: argparse.Namespace) -> int:
    pool = open_pool(settings.database_url, max_size=1, name="identity-cli")
    try:
        key = Keyring(pool, retired_kept=timedelta(seconds=settings.longest_token_ttl_seconds)).rotate()
    finally:
        pool.close()
    print(f"new current signing key: {key.kid}")
    return 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="tend-identity", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("migrate", help="apply the database migrations").set_defaults(run=_migrate)
    commands.add_parser("serve", help="run the gRPC service until SIGTERM").set_defaults(run=_serve)
    load_demo = commands.add_parser("load-demo", help="load the demo university (idempotent) and print its logins")
    load_demo.add_argument("--seed", type=int, default=demo.DEFAULT_SEED, help="the demo's random seed")
    load_demo.set_defaults(run=_load_demo)
    commands.add_parser(
        "rotate-signing-key", help="retire the current signing key and make a new one current"
    ).set_defaults(run=_rotate_signing_key)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    settings = load()
    return int(args.run(settings, args))


if __name__ == "__main__":
    sys.exit(main())
