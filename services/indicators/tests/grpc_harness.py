"""The IndicatorsService served in-process for tests: real gRPC, a real database, a fake identity over real gRPC;
and helpers to read the audit records it wrote and the status of a refused call."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime

import grpc
import psycopg
import pytest
from psycopg_pool import ConnectionPool
from tend.audit.v1 import events_pb2 as audit_pb2
from tend.indicators.v1 import indicators_pb2_grpc

from services.indicators.tests.fake_identity import FakeIdentity
from services.indicators.tests.histories import CONFIG, OPTIONS
from tend_common.grpc_server import GrpcServer, start_grpc_server
from tend_indicators.access import IdentityVisibility, assertion_verifier
from tend_indicators.directory import IdentityDirectory
from tend_indicators.grpc_api import SERVICE_NAME, IndicatorsServicer
from tend_indicators.recompute import recompute

TUTOR = "tutor-1"
NOW = datetime(2026, 2, 16, 12, tzinfo=UTC)


@contextmanager
def serving(
    pool: ConnectionPool, fake_identity: FakeIdentity, directory: IdentityDirectory
) -> Iterator[indicators_pb2_grpc.IndicatorsServiceStub]:
    """After a recompute for 13 Feb (p_s00's case, routed to TUTOR), a stub of the service answering as of NOW."""
    fake_identity.responsible["p_s00"] = [(TUTOR, "personal_tutor")]
    recompute(pool, directory, CONFIG, OPTIONS, date(2026, 2, 13), now=NOW)
    channel = grpc.insecure_channel(fake_identity.target)
    servicer = IndicatorsServicer(
        pool, assertion_verifier(channel), IdentityVisibility(channel), CONFIG, OPTIONS, clock=lambda: NOW
    )
    server: GrpcServer = start_grpc_server(
        lambda s: indicators_pb2_grpc.add_IndicatorsServiceServicer_to_server(servicer, s), [SERVICE_NAME], 0
    )
    try:
        with grpc.insecure_channel(f"127.0.0.1:{server.port}") as client:
            yield indicators_pb2_grpc.IndicatorsServiceStub(client)
    finally:
        server.stop(0)
        channel.close()


def audit_records(dsn: str) -> list[audit_pb2.AuditEvent]:
    with psycopg.connect(dsn) as conn:
        rows = conn.execute("SELECT body FROM outbox WHERE routing_key = 'audit.recorded.v1' ORDER BY id").fetchall()
    return [audit_pb2.AuditEvent.FromString(bytes(row[0])) for row in rows]


def code_of(call: object) -> grpc.StatusCode:
    with pytest.raises(grpc.RpcError) as raised:
        call()  # type: ignore[operator]
    return raised.value.code()
