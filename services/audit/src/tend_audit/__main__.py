"""Entry point: `tend-audit migrate | serve | verify | prune`."""

from __future__ import annotations

import argparse
import base64
import binascii
import logging
import sys
from datetime import UTC, datetime

import psycopg

from tend_audit.settings import Settings, from_environment
from tend_audit.signing import SigningKeyError, key_id_of, load_signing_key
from tend_audit.upgrade import build_missing_tree
from tend_audit.verify import VerificationResult, verify_log
from tend_common.db import apply_migrations
from tend_common.logging import configure_logging
from tend_common.settings import SettingsError

log = logging.getLogger(__name__)


def _migrate(settings: Settings, _args: argparse.Namespace) -> int:
    applied = apply_migrations(settings.database_url, "tend_audit.migrations")
    with psycopg.connect(settings.database_url) as conn:
        build_missing_tree(conn)
    log.info("migrations up to date", extra={"fields": {"applied": len(applied)}})
    return 0


def _serve(settings: Settings, _args: argparse.Namespace) -> int:
    from tend_audit.service import serve

    serve(settings)
    return 0


def _trusted_keys(texts: list[str]) -> dict[str, bytes] | None:
    if not texts:
        return None
    keys: dict[str, bytes] = {}
    for text in texts:
        try:
            raw = base64.b64decode(text, validate=True)
        except binascii.Error as exc:
            raise SettingsError(f"--public-key {text!r} is not base64") from exc
        if len(raw) != 32:
            raise SettingsError(f"--public-key {text!r} is not a 32-byte Ed25519 public key")
        keys[key_id_of(raw)] = raw
    return keys


def _report(result: VerificationResult) -> int:
    if result.ok:
        start = f" after the checkpoint at {result.starts_after}" if result.starts_after else ""
        print(
            f"audit log verified: {result.records_checked} records{start}, {result.tree_heads_checked} signed tree"
            " heads"
        )
        return 0
    where = f" at record {result.first_bad_seq}" if result.first_bad_seq is not None else ""
    print(f"audit log FAILED verification{where}: {result.problem}", file=sys.stderr)
    return 1


def _verify(settings: Settings, args: argparse.Namespace) -> int:
    with psycopg.connect(settings.database_url) as conn:
        return _report(verify_log(conn, _trusted_keys(args.public_key), dsn=settings.database_url))


def _prune(settings: Settings, _args: argparse.Namespace) -> int:
    from tend_audit.prune import PruneRefused, prune, retention_cutoff

    cutoff = retention_cutoff(datetime.now(UTC), settings.retention_years)
    with psycopg.connect(settings.database_url) as conn:
        key = load_signing_key(conn, settings.signing_key)
        try:
            result = prune(conn, key, cutoff)
        except PruneRefused as exc:
            print(f"audit log NOT pruned: {exc}", file=sys.stderr)
            return 1
    if result.checkpoint_size is None:
        print(f"nothing to prune: no records older than {cutoff.isoformat()}")
    else:
        print(f"pruned {result.pruned} records older than {cutoff.isoformat()}; checkpoint at {result.checkpoint_size}")
    return 0


COMMANDS = {
    "migrate": (_migrate, "apply the database migrations, then exit"),
    "serve": (_serve, "consume audit events into the log and serve the AuditService until SIGTERM"),
    "verify": (_verify, "recompute the log, its tree and its signed heads; name the first bad record"),
    "prune": (_prune, "remove records older than the retention period, leaving a signed checkpoint"),
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="tend-audit", description="Tend's audit log.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, (_run, help_text) in COMMANDS.items():
        command = commands.add_parser(name, help=help_text)
        if name == "verify":
            command.add_argument(
                "--public-key",
                action="append",
                default=[],
                help="trust only this base64 Ed25519 public key (repeatable), not the keys in audit's database",
            )
    args = parser.parse_args(argv)
    try:
        settings = from_environment()
    except SettingsError as exc:
        print(f"tend-audit: {exc}", file=sys.stderr)
        return 2
    configure_logging("audit", settings.log_level)
    run, _help = COMMANDS[args.command]
    try:
        return run(settings, args)
    except (SettingsError, SigningKeyError) as exc:
        print(f"tend-audit: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
