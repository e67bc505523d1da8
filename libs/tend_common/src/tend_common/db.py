"""PostgreSQL access: a connection pool, and forward-only SQL migrations applied under an advisory lock."""

from __future__ import annotations

import hashlib
import logging
from importlib import resources
from importlib.resources.abc import Traversable

import psycopg
from psycopg_pool import ConnectionPool

log = logging.getLogger(__name__)

# Any constant works; it only has to be the same for every process applying migrations to one database.
_MIGRATION_LOCK_ID = 7_311_992


def open_pool(dsn: str, min_size: int = 1, max_size: int = 10, name: str = "db") -> ConnectionPool:
    """Opens a pool and waits until it has its first connection, so a bad DSN fails at start-up."""
    pool = ConnectionPool(dsn, min_size=min_size, max_size=max_size, name=name, open=False)
    pool.open(wait=True, timeout=15.0)
    return pool


def _migration_files(package: str) -> list[Traversable]:
    folder = resources.files(package)
    return sorted((f for f in folder.iterdir() if f.name.endswith(".sql")), key=lambda f: f.name)


def apply_migrations(dsn: str, package: str | None) -> list[str]:
    """Applies the plumbing tables (outbox, inbox), then, in name order, every `NNNN_*.sql` file in `package` not
    yet applied; returns the names applied.

    Each file runs in its own transaction with its record in `schema_migrations`. A file already applied whose
    content has changed is an error: migrations are forward-only, a change is a new file.
    """
    applied_now: list[str] = []
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("SELECT pg_advisory_lock(%s)", (_MIGRATION_LOCK_ID,))
        try:
            conn.execute(
                "CREATE TABLE IF NOT EXISTS schema_migrations ("
                " name text PRIMARY KEY, sha256 text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())"
            )
            done = {row[0]: row[1] for row in conn.execute("SELECT name, sha256 FROM schema_migrations")}
            plumbing = [(f"tend_common/{f.name}", f) for f in _migration_files("tend_common.migrations")]
            own = [(f.name, f) for f in _migration_files(package)] if package else []
            for name, file in [*plumbing, *own]:
                sql = file.read_text(encoding="utf-8")
                digest = hashlib.sha256(sql.encode()).hexdigest()
                if name in done:
                    if done[name] != digest:
                        raise RuntimeError(f"migration {name} changed after it was applied; add a new file")
                    continue
                with conn.transaction():
                    conn.execute(sql.encode())
                    conn.execute("INSERT INTO schema_migrations (name, sha256) VALUES (%s, %s)", (name, digest))
                applied_now.append(name)
                log.info("migration applied", extra={"fields": {"migration": name}})
        finally:
            conn.execute("SELECT pg_advisory_unlock(%s)", (_MIGRATION_LOCK_ID,))
    return applied_now
