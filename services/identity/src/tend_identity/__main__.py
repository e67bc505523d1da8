"""tend-identity: `migrate`, `serve`, `load-demo`, `import`, `policy-docs` and `rotate-signing-key`."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from datetime import timedelta
from pathlib import Path

import psycopg

from tend_common.db import apply_migrations, open_pool
from tend_common.settings import SettingsError
from tend_identity import demo, passwords
from tend_identity.secret_wrapping import SecretWrappingError, rewrap_stored_secrets, wrapping_from_settings
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


def _import(settings: Settings | None, args: argparse.Namespace) -> int:
    from tend_identity.importing.apply import ImportRejected, run_import

    assert settings is not None
    data = Path(args.file).read_bytes()
    try:
        with psycopg.connect(settings.database_url) as conn:
            outcome = run_import(conn, args.kind, data)
    except ImportRejected as rejected:
        print(f"{args.file}: rejected, nothing was imported ({len(rejected.problems)} problem(s)):", file=sys.stderr)
        for problem in rejected.problems:
            print(f"  {problem}", file=sys.stderr)
        return 1
    print(
        f"{args.file}: {outcome.rows} row(s) imported; " + ("records changed" if outcome.changed else "nothing changed")
    )
    return 0


def _rotate_signing_key(settings: Settings, _args: argparse.Namespace) -> int:
    wrapping = wrapping_from_settings(settings)
    pool = open_pool(settings.database_url, max_size=1, name="identity-cli")
    try:
        # The stored keys are checked first: a wrong key-encryption key fails here, not after a key was added.
        with pool.connection() as conn:
            rewrap_stored_secrets(conn, wrapping)
        retired_kept = timedelta(seconds=settings.longest_token_ttl_seconds)
        key = Keyring(pool, retired_kept=retired_kept, wrapping=wrapping).rotate()
    finally:
        pool.close()
    print(f"new current signing key: {key.kid}")
    return 0


def _policy_docs(_settings: Settings | None, args: argparse.Namespace) -> int:
    from tend_identity.policy_docs import render

    text = render()
    if args.output:
        Path(args.output).write_text(text, encoding="utf-8")
        print(f"written to {args.output}")
    else:
        print(text, end="")
    return 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="tend-identity", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("migrate", help="apply the database migrations").set_defaults(run=_migrate)
    commands.add_parser("serve", help="run the gRPC service until SIGTERM").set_defaults(run=_serve)
    load_demo = commands.add_parser("load-demo", help="load the demo university (idempotent) and print its logins")
    load_demo.add_argument("--seed", type=int, default=demo.DEFAULT_SEED, help="the demo's random seed")
    load_demo.set_defaults(run=_load_demo)
    from tend_identity.importing.apply import KINDS

    importing = commands.add_parser(
        "import", help="import a student records file (docs/import.md), whole or not at all"
    )
    importing.add_argument("kind", choices=sorted(KINDS), help="what the file holds")
    importing.add_argument("file", help="the CSV file")
    importing.set_defaults(run=_import)
    policy_docs = commands.add_parser("policy-docs", help="print (or write) the access policy as Markdown")
    policy_docs.add_argument("--output", help="the file to write, for example docs/access-policy.md")
    policy_docs.set_defaults(run=_policy_docs, needs_settings=False)
    commands.add_parser(
        "rotate-signing-key", help="retire the current signing key and make a new one current"
    ).set_defaults(run=_rotate_signing_key)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        settings = load() if getattr(args, "needs_settings", True) else None
        return int(args.run(settings, args))
    except (SettingsError, SecretWrappingError) as exc:
        # A configuration mistake, said plainly (no traceback) so that it is read and fixed.
        print(f"tend-identity {args.command}: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
