"""Fixtures for checkin's tests: a fake identity over real gRPC, and settings pointing at this test's own database,
broker namespace and Redis prefix."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from services.checkin.tests.fake_identity import FakeIdentity
from tend_checkin.settings import Settings
from tend_testing.backends import Backends
from tend_testing.plugin import DatabaseFactory

MIGRATIONS = "tend_checkin.migrations"


@pytest.fixture
def fake_identity() -> Iterator[FakeIdentity]:
    identity = FakeIdentity()
    identity.start()
    yield identity
    identity.stop()


@pytest.fixture
def checkin_settings(
    backends: Backends,
    database_factory: DatabaseFactory,
    amqp_namespace: str,
    redis_prefix: str,
    fake_identity: FakeIdentity,
) -> Settings:
    assert fake_identity.target is not None
    return Settings(
        database_url=database_factory(MIGRATIONS),
        amqp_url=backends.amqp_url,
        amqp_namespace=amqp_namespace,
        redis_url=backends.redis_url,
        redis_prefix=redis_prefix,
        identity_target=fake_identity.target,
        grpc_port=0,
        metrics_port=0,
        http_port=0,
        public_base_url="http://checkin.example.ac.uk",
        portal_base_url="http://tend.example.ac.uk",
        secret_key="test-secret-key-" + "x" * 32,
    )
