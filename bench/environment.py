"""Real backing services for a benchmark run: a fresh database, a private broker namespace, cleaned up after."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import pika
import psycopg

from tend_common.db import apply_migrations
from tend_testing.backends import Backends, find_backends
from tend_testing.namespaces import new_amqp_namespace


@dataclass(frozen=True)
class BenchEnvironment:
    backends: Backends
    amqp_namespace: str
    # Databases this run created, dropped at its end (never another run's, which may still be going).
    created: list[str] = field(default_factory=list)

    def database(self, migrations_package: str | None) -> str:
        name = f"bench_{uuid.uuid4().hex[:12]}"
        self.created.append(name)
        with psycopg.connect(self.backends.postgres_admin_dsn, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        dsn = self.backends.postgres_admin_dsn.rsplit("/", 1)[0] + f"/{name}"
        apply_migrations(dsn, migrations_package)
        return dsn


@contextmanager
def bench_environment() -> Iterator[BenchEnvironment]:
    backends, containers = find_backends()
    environment = BenchEnvironment(backends, new_amqp_namespace())
    try:
        yield environment
    finally:
        _drop_databases(backends.postgres_admin_dsn, environment.created)
        if containers is not None:
            containers.stop()


def _drop_databases(admin_dsn: str, names: list[str]) -> None:
    with psycopg.connect(admin_dsn, autocommit=True) as conn:
        for name in names:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def delete_queues(amqp_url: str, queues: list[str]) -> None:
    connection = pika.BlockingConnection(pika.URLParameters(amqp_url))
    channel = connection.channel()
    for queue in queues:
        channel.queue_delete(queue)
    connection.close()
