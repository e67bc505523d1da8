"""Pytest fixtures: each test gets its own PostgreSQL database (built from the real migrations), its own RabbitMQ
namespace of exchanges and queues, and its own Redis key prefix."""

from __future__ import annotations

import shutil
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator

import pika
import pika.exceptions
import psycopg
import pytest
import redis

from tend_common.db import apply_migrations
from tend_testing.backends import BackendMissing, Backends, find_backends
from tend_testing.namespaces import issued_here, new_amqp_namespace
from tend_testing.running_suite import running_suite

__all__ = ["running_suite"]  # the whole suite as real processes, for end-to-end tests

DatabaseFactory = Callable[[str | None], str]


def _dsn_for(admin_dsn: str, database: str) -> str:
    return admin_dsn.rsplit("/", 1)[0] + f"/{database}"


@pytest.fixture(scope="session")
def backends() -> Iterator[Backends]:
    try:
        found, containers = find_backends()
    except BackendMissing as exc:
        pytest.fail(str(exc), pytrace=False)
    yield found
    if containers is not None:
        containers.stop()


class _Templates:
    """One migrated template database per migrations package per test process; each test copies one."""

    def __init__(self, admin_dsn: str) -> None:
        self._admin_dsn = admin_dsn
        self._by_package: dict[str | None, str] = {}
        self.created: list[str] = []

    def template_for(self, package: str | None) -> str:
        if package not in self._by_package:
            name = f"tmpl_{uuid.uuid4().hex[:12]}"
            with psycopg.connect(self._admin_dsn, autocommit=True) as conn:
                conn.execute(f'CREATE DATABASE "{name}"')
            self.created.append(name)
            apply_migrations(_dsn_for(self._admin_dsn, name), package)
            self._by_package[package] = name
        return self._by_package[package]


@pytest.fixture(scope="session")
def _templates(backends: Backends) -> Iterator[_Templates]:
    templates = _Templates(backends.postgres_admin_dsn)
    yield templates
    with psycopg.connect(backends.postgres_admin_dsn, autocommit=True) as conn:
        for name in templates.created:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


class DatabaseMaker:
    """Creates databases copied from migrated templates, and drops them again."""

    def __init__(self, admin_dsn: str, templates: _Templates) -> None:
        self._admin_dsn = admin_dsn
        self._templates = templates
        self._created: list[str] = []

    def create(self, migrations_package: str | None) -> str:
        template = self._templates.template_for(migrations_package)
        name = f"t_{uuid.uuid4().hex[:16]}"
        with psycopg.connect(self._admin_dsn, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}" TEMPLATE "{template}"')
        self._created.append(name)
        return _dsn_for(self._admin_dsn, name)

    def drop_all(self) -> None:
        with psycopg.connect(self._admin_dsn, autocommit=True) as conn:
            for name in self._created:
                conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        self._created.clear()


@pytest.fixture
def database_factory(backends: Backends, _templates: _Templates) -> Iterator[DatabaseFactory]:
    """Creates a fresh database with the migrations of the given package applied; returns its DSN."""
    maker = DatabaseMaker(backends.postgres_admin_dsn, _templates)
    yield maker.create
    maker.drop_all()


@pytest.fixture(scope="module")
def module_database_factory(backends: Backends, _templates: _Templates) -> Iterator[DatabaseFactory]:
    """As database_factory, for fixtures shared by a module's tests (a running suite)."""
    maker = DatabaseMaker(backends.postgres_admin_dsn, _templates)
    yield maker.create
    maker.drop_all()


@pytest.fixture
def redis_prefix(backends: Backends) -> Iterator[str]:
    """A key prefix of this test's own; its keys are removed afterwards."""
    prefix = f"test:{uuid.uuid4().hex[:12]}:"
    yield prefix
    client = redis.Redis.from_url(backends.redis_url)
    keys = list(client.scan_iter(match=f"{prefix}*", count=1000))
    if keys:
        client.delete(*keys)
    client.close()


@pytest.fixture(scope="module")
def _amqp_cleanup(backends: Backends) -> Iterator[None]:
    yield
    # Quorum queues outlive connections, and hundreds of them slow the broker for everyone: after each test module,
    # remove the queues and exchanges of the namespaces this process issued. Listing needs rabbitmqctl (the broker on
    # this machine); in containers the broker goes away with its container. Best effort: a cleanup that cannot reach
    # the broker is reported, not turned into a failure of the tests that already ran.
    if backends.via_containers or shutil.which("rabbitmqctl") is None:
        return
    try:
        listed = {}
        for kind in ("queues", "exchanges"):
            result = subprocess.run(
                ["rabbitmqctl", "-q", f"list_{kind}", "name"], capture_output=True, text=True, check=False, timeout=60
            )
            listed[kind] = [n.strip() for n in result.stdout.splitlines() if issued_here(n.strip())]
        if not listed["queues"] and not listed["exchanges"]:
            return
        connection = pika.BlockingConnection(pika.URLParameters(backends.amqp_url))
        channel = connection.channel()
        for queue in listed["queues"]:
            channel.queue_delete(queue)
        for exchange in listed["exchanges"]:
            channel.exchange_delete(exchange)
        connection.close()
    except (pika.exceptions.AMQPError, OSError, subprocess.TimeoutExpired) as exc:
        print(f"tend_testing: could not remove this module's test queues ({type(exc).__name__})", file=sys.stderr)


@pytest.fixture
def amqp_namespace(_amqp_cleanup: None) -> str:
    """A namespace for exchange and queue names that no other test uses."""
    return new_amqp_namespace()
