"""Fixtures for indicators' tests: a fake identity over real gRPC, a migrated database of the test's own, and the
ingest web app against both."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date, timedelta

import grpc
import pytest
from flask import Flask
from flask.testing import FlaskClient
from psycopg_pool import ConnectionPool

from services.indicators.tests.fake_identity import FakeIdentity
from services.indicators.tests.histories import RUN, TERM_STARTS, at
from tend_common.service_auth import generate_service_key
from tend_indicators.directory import IdentityDirectory
from tend_indicators.ingest import reference
from tend_indicators.ingest.records import EngagementRecord, store_records
from tend_indicators.settings import Settings
from tend_indicators.web import close_app, create_app
from tend_testing.backends import Backends
from tend_testing.plugin import DatabaseFactory

MIGRATIONS = "tend_indicators.migrations"
SOURCE = "moodle"
SOURCE_KEY = "moodle-test-key-" + "k" * 24


@pytest.fixture
def fake_identity() -> Iterator[FakeIdentity]:
    with FakeIdentity() as identity:
        yield identity


@pytest.fixture
def dsn(database_factory: DatabaseFactory) -> str:
    return database_factory(MIGRATIONS)


@pytest.fixture
def pool(dsn: str) -> Iterator[ConnectionPool]:
    opened = ConnectionPool(dsn, min_size=1, max_size=4, open=True)
    yield opened
    opened.close()


@pytest.fixture
def indicators_settings(backends: Backends, dsn: str, amqp_namespace: str, fake_identity: FakeIdentity) -> Settings:
    return Settings(
        database_url=dsn,
        amqp_url=backends.amqp_url,
        amqp_namespace=amqp_namespace,
        identity_target=fake_identity.target,
        grpc_port=0,
        metrics_port=0,
        http_port=0,
        source_credentials=(f"{SOURCE}:{SOURCE_KEY}", "library:library-test-key-" + "l" * 24),
        service_key=generate_service_key(),
        web_threads=2,
    )


@pytest.fixture
def web_app(indicators_settings: Settings) -> Iterator[Flask]:
    app = create_app(indicators_settings)
    yield app
    close_app(app)


@pytest.fixture
def client(web_app: Flask) -> FlaskClient:
    return web_app.test_client()


@pytest.fixture
def directory(fake_identity: FakeIdentity) -> IdentityDirectory:
    return IdentityDirectory(grpc.insecure_channel(fake_identity.target))


@pytest.fixture
def cohort(pool: ConnectionPool) -> list[str]:
    """Twelve students on a module run; all active every weekday until 30 Jan, then only s00 goes quiet."""
    students = [f"p_s{n:02d}" for n in range(12)]
    records = []
    for pseudonym in students:
        last = date(2026, 1, 30) if pseudonym == "p_s00" else date(2026, 2, 27)
        day = TERM_STARTS
        while day <= last:
            if day.weekday() < 5:
                records.append(EngagementRecord(f"t:{pseudonym}:{day}", pseudonym, RUN, "vle", "viewed", at(day), 5))
            day += timedelta(days=1)
    with pool.connection() as conn, conn.transaction(), conn.cursor() as cur:
        reference.store_module_runs(cur, [reference.ModuleRun(RUN, "uni", None, TERM_STARTS, date(2026, 5, 1))])
        reference.store_enrolments(cur, [reference.Enrolment(RUN, p, date(2026, 1, 5)) for p in students])
        store_records(cur, records)
    return students
