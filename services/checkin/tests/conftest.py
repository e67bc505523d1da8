"""Fixtures for checkin's tests: a fake identity over real gRPC, and settings pointing at this test's own database,
broker namespace and Redis prefix."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator

import grpc
import pika
import pytest
from flask import Flask
from psycopg_pool import ConnectionPool
from tend.checkin.v1 import checkin_pb2_grpc

from services.checkin.tests.grpc_harness import ALLOWED_REASON, DENIED_REASON, Api
from services.checkin.tests.grpc_harness import NOW as GRPC_NOW
from services.checkin.tests.web_harness import NOW, ROUTING_KEY, FixedClock, Web, WebFactory
from tend_checkin.access import AUDIENCE, checkin_token_verifier
from tend_checkin.grpc_api import SERVICE_NAME, CheckinServicer
from tend_checkin.settings import Settings
from tend_checkin.web import close_app, create_app
from tend_common.db import open_pool
from tend_common.grpc_server import start_grpc_server
from tend_common.identity_access import IdentityAccessChecker
from tend_common.messaging.topology import Topology, declare_consumer_queue
from tend_testing.backends import Backends
from tend_testing.fake_identity import FakeIdentity
from tend_testing.plugin import DatabaseFactory

MIGRATIONS = "tend_checkin.migrations"


@pytest.fixture
def fake_identity() -> Iterator[FakeIdentity]:
    with FakeIdentity(AUDIENCE, allowed_reason=ALLOWED_REASON, denied_reason=DENIED_REASON) as identity:
        yield identity


@pytest.fixture
def checkin_settings(
    backends: Backends,
    database_factory: DatabaseFactory,
    amqp_namespace: str,
    redis_prefix: str,
    fake_identity: FakeIdentity,
) -> Settings:
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


@pytest.fixture
def make_web(checkin_settings: Settings, fake_identity: FakeIdentity) -> Iterator[WebFactory]:
    apps: list[Flask] = []
    connection = pika.BlockingConnection(pika.URLParameters(checkin_settings.amqp_url))

    def make(bind_queue: bool = True, **overrides: object) -> Web:
        settings = dataclasses.replace(checkin_settings, **overrides)  # type: ignore[arg-type]
        channel = connection.channel()
        topology = Topology(settings.amqp_namespace)
        queue = topology.queue("test", "attendance")
        if bind_queue:
            # Bound before any publish, so the mandatory publish is routable and the event can be read back.
            declare_consumer_queue(channel, topology, queue, [ROUTING_KEY])
        clock = FixedClock(NOW)
        app = create_app(settings, clock=clock)
        apps.append(app)
        return Web(app, settings, fake_identity, clock, channel, queue)

    yield make
    for app in apps:
        close_app(app)
    connection.close()


@pytest.fixture
def web(make_web: WebFactory) -> Web:
    return make_web()


@pytest.fixture
def api(checkin_settings: Settings, fake_identity: FakeIdentity) -> Iterator[Api]:
    pool: ConnectionPool = open_pool(checkin_settings.database_url, max_size=4)
    identity_channel = grpc.insecure_channel(checkin_settings.identity_target)
    servicer = CheckinServicer(
        pool,
        checkin_token_verifier(identity_channel),
        IdentityAccessChecker(identity_channel, timeout_seconds=2.0),
        checkin_settings,
        clock=lambda: GRPC_NOW,
    )
    server = start_grpc_server(
        lambda s: checkin_pb2_grpc.add_CheckinServiceServicer_to_server(servicer, s), [SERVICE_NAME], 0
    )
    channel = grpc.insecure_channel(f"127.0.0.1:{server.port}")
    yield Api(checkin_pb2_grpc.CheckinServiceStub(channel), fake_identity, checkin_settings)
    channel.close()
    server.stop(grace_seconds=0)
    identity_channel.close()
    pool.close()
