"""Fixtures for identity's tests: a fresh migrated database per test, optionally with the demo university loaded,
and the servicer behind a real in-process gRPC server."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

import grpc
import pytest
from psycopg_pool import ConnectionPool
from tend.identity.v1 import identity_pb2_grpc

from services.identity.tests.kek import TEST_WRAPPING
from tend_common.db import open_pool
from tend_common.grpc_server import start_grpc_server
from tend_identity import demo, passwords
from tend_identity.grpc_service import SERVICE_NAME, IdentityServicer, register
from tend_identity.settings import Settings
from tend_identity.signing import Keyring
from tend_testing.plugin import DatabaseFactory


@pytest.fixture
def identity_dsn(database_factory: DatabaseFactory) -> str:
    return database_factory("tend_identity.migrations")


@pytest.fixture
def pool(identity_dsn: str) -> Iterator[ConnectionPool]:
    pool = open_pool(identity_dsn, max_size=4, name="identity-test")
    yield pool
    pool.close()


@pytest.fixture(scope="session")
def demo_password_hash() -> str:
    # argon2 is slow on purpose; one hash serves every test.
    return passwords.hash_password(demo.DEMO_PASSWORD)


@pytest.fixture
def demo_pool(pool: ConnectionPool, demo_password_hash: str) -> ConnectionPool:
    """The pool, with the demo university loaded."""
    with pool.connection() as conn:
        demo.load_demo(conn, demo.build_demo(), demo_password_hash)
    return pool


@pytest.fixture
def settings(identity_dsn: str) -> Settings:
    return Settings(database_url=identity_dsn, grpc_port=0, metrics_port=0)


@pytest.fixture
def keyring(pool: ConnectionPool, settings: Settings) -> Keyring:
    return Keyring(pool, retired_kept=timedelta(seconds=settings.longest_token_ttl_seconds), wrapping=TEST_WRAPPING)


@pytest.fixture
def servicer(demo_pool: ConnectionPool, keyring: Keyring, settings: Settings) -> Iterator[IdentityServicer]:
    """The servicer over the demo university, with its own audit writer and facts cache."""
    servicer = IdentityServicer(demo_pool, keyring, settings)
    yield servicer
    servicer.close()


@pytest.fixture
def channel(servicer: IdentityServicer) -> Iterator[grpc.Channel]:
    """A channel to identity, serving the demo university from a real gRPC server on a free port."""
    server = start_grpc_server(register(servicer), [SERVICE_NAME], port=0, max_workers=4)
    with grpc.insecure_channel(f"127.0.0.1:{server.port}") as channel:
        yield channel
    server.stop(grace_seconds=1.0)


@pytest.fixture
def stub(channel: grpc.Channel) -> identity_pb2_grpc.IdentityServiceStub:
    return identity_pb2_grpc.IdentityServiceStub(channel)
