"""Fixtures for audit's tests: a fresh migrated database, and the AuditService over real gRPC with a fake identity."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import grpc
import psycopg
import pytest
from psycopg_pool import ConnectionPool
from tend.audit.v1 import audit_pb2_grpc

from tend_audit.access import AUDIENCE, assertion_verifier
from tend_audit.grpc_api import SERVICE_NAME, AuditServicer
from tend_audit.signing import SigningKey, load_signing_key
from tend_common.db import open_pool
from tend_common.grpc_server import start_grpc_server
from tend_common.identity_access import IdentityAccessChecker
from tend_testing.fake_identity import FakeIdentity
from tend_testing.plugin import DatabaseFactory

MIGRATIONS = "tend_audit.migrations"
DENIED_REASON = "Only the data protection officer may read the audit log."


@pytest.fixture
def dsn(database_factory: DatabaseFactory) -> str:
    return database_factory(MIGRATIONS)


@pytest.fixture
def signing_key(dsn: str) -> SigningKey:
    with psycopg.connect(dsn) as conn:
        return load_signing_key(conn, "")


@pytest.fixture
def fake_identity() -> Iterator[FakeIdentity]:
    with FakeIdentity(AUDIENCE, denied_reason=DENIED_REASON) as identity:
        yield identity


@dataclass
class Api:
    stub: audit_pb2_grpc.AuditServiceStub
    identity: FakeIdentity
    dsn: str


@pytest.fixture
def api(dsn: str, signing_key: SigningKey, fake_identity: FakeIdentity) -> Iterator[Api]:
    pool: ConnectionPool = open_pool(dsn, max_size=4)
    identity_channel = grpc.insecure_channel(fake_identity.target)
    servicer = AuditServicer(
        pool,
        signing_key,
        assertion_verifier(identity_channel),
        IdentityAccessChecker(identity_channel, timeout_seconds=2.0),
    )
    server = start_grpc_server(
        lambda s: audit_pb2_grpc.add_AuditServiceServicer_to_server(servicer, s), [SERVICE_NAME], 0
    )
    channel = grpc.insecure_channel(f"127.0.0.1:{server.port}")
    yield Api(audit_pb2_grpc.AuditServiceStub(channel), fake_identity, dsn)
    channel.close()
    server.stop(grace_seconds=0)
    identity_channel.close()
    pool.close()
