"""The checks every consumer makes before reading an event of its own."""

from __future__ import annotations

import pytest
from tend.checkin.v1 import events_pb2
from tend.common.v1 import event_pb2

from tend_common.messaging.consumer import Delivery, PoisonMessage
from tend_common.messaging.decoding import decode_event, require_fields


def _delivery(body: bytes, event_id: str = "e-1", schema_version: int = 1) -> Delivery:
    return Delivery("checkin.attendance_recorded.v1", event_id, "AttendanceRecorded", schema_version, body, False)


def _event(**fields: object) -> events_pb2.AttendanceRecorded:
    return events_pb2.AttendanceRecorded(meta=event_pb2.EventMeta(event_id="e-1"), **fields)  # type: ignore[arg-type]


def test_a_well_formed_event_is_returned() -> None:
    event = decode_event(_delivery(_event(session_id="s").SerializeToString()), events_pb2.AttendanceRecorded, {1})
    assert event.session_id == "s"


@pytest.mark.parametrize(
    ("delivery", "reason"),
    [
        (_delivery(b"", schema_version=2), "unsupported schema version 2"),
        (_delivery(b"\xff\xff\xff"), "body is not an AttendanceRecorded message"),
        (_delivery(_event().SerializeToString(), event_id="e-2"), "message id and event id differ"),
    ],
)
def test_an_event_that_can_never_be_applied_is_poison(delivery: Delivery, reason: str) -> None:
    with pytest.raises(PoisonMessage, match=reason):
        decode_event(delivery, events_pb2.AttendanceRecorded, {1})


def test_every_empty_field_is_named_in_order() -> None:
    event = _event(session_id="s")
    require_fields(event, "session_id")
    with pytest.raises(PoisonMessage) as refused:
        require_fields(event, "module_run_id", "session_id", "recorded_at", "student_pseudonym")
    assert str(refused.value) == "missing module_run_id, recorded_at, student_pseudonym"
