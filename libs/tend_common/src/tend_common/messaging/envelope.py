"""An event ready to publish: a serialised protobuf message with the properties consumers route and de-duplicate by."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime

from google.protobuf.message import Message
from google.protobuf.timestamp_pb2 import Timestamp
from tend.common.v1.event_pb2 import EventMeta

CONTENT_TYPE = "application/x-protobuf"


@dataclass(frozen=True)
class OutgoingEvent:
    """A serialised event and the AMQP properties it travels with."""

    routing_key: str
    event_id: str
    type_name: str
    schema_version: int
    body: bytes


def timestamp(moment: datetime) -> Timestamp:
    stamp = Timestamp()
    stamp.FromDatetime(moment.astimezone(UTC))
    return stamp


def new_meta(
    producer: str,
    schema_version: int = 1,
    event_id: str | None = None,
    request_id: str = "",
    occurred_at: datetime | None = None,
) -> EventMeta:
    """Metadata for a new event; pass `event_id` when the fact itself determines it (so repeats de-duplicate)."""
    return EventMeta(
        event_id=event_id or str(uuid.uuid4()),
        schema_version=schema_version,
        occurred_at=timestamp(occurred_at or datetime.now(UTC)),
        producer=producer,
        request_id=request_id,
    )


def envelope(message: Message, routing_key: str) -> OutgoingEvent:
    """Wraps an event message, which must have a `meta` field of type EventMeta."""
    meta: EventMeta = message.meta  # type: ignore[attr-defined]
    if not meta.event_id:
        raise ValueError(f"{message.DESCRIPTOR.full_name} has no event id")
    return OutgoingEvent(
        routing_key=routing_key,
        event_id=meta.event_id,
        type_name=message.DESCRIPTOR.full_name,
        schema_version=meta.schema_version,
        body=message.SerializeToString(deterministic=True),
    )
