"""The CheckinService gRPC API served in-process against a real database and a fake identity over real gRPC: the
harness the gRPC tests share (the `api` fixture is in conftest.py)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

import grpc
import psycopg
import pytest
from google.protobuf.timestamp_pb2 import Timestamp
from tend.checkin.v1 import checkin_pb2, checkin_pb2_grpc

from tend_checkin.settings import Settings
from tend_testing.fake_identity import FakeIdentity

NOW = datetime(2026, 10, 5, 8, 55, 7, tzinfo=UTC)
STAFF = "0b6f1c1e-6a53-4c39-9a43-5f2d8c1c2a10"
MODULE_RUN = "7d1f2a9e-1111-4a8e-9f0b-3c2d1e0f9a88"
OPEN = "teaching_session.open"
PRESENT = "teaching_session.present"
ALLOWED_REASON = "You teach this module."
DENIED_REASON = "You do not teach this module."


@dataclass
class Api:
    stub: checkin_pb2_grpc.CheckinServiceStub
    identity: FakeIdentity
    settings: Settings

    def assertion(self, person_id: str = STAFF) -> str:
        return self.identity.assertion(person_id)

    def rows(self, sql: str) -> list[tuple[object, ...]]:
        with psycopg.connect(self.settings.database_url) as conn:
            return conn.execute(sql).fetchall()


def stamp(moment: datetime) -> Timestamp:
    result = Timestamp()
    result.FromDatetime(moment)
    return result


def open_request(api: Api, **fields: object) -> checkin_pb2.OpenSessionRequest:
    values: dict[str, object] = {
        "actor_assertion": api.assertion(),
        "module_run_id": MODULE_RUN,
        "room": "Main Building LT1",
        "starts_at": stamp(datetime(2026, 10, 5, 9, 0, tzinfo=UTC)),
        "duration_minutes": 50,
    }
    values.update(fields)
    return checkin_pb2.OpenSessionRequest(**values)  # type: ignore[arg-type]


def status_of(call: Callable[[], object]) -> grpc.StatusCode:
    with pytest.raises(grpc.RpcError) as raised:
        call()
    code: grpc.StatusCode = raised.value.code()
    return code
