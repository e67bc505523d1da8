"""Reading a protobuf event from a delivery: the checks every consumer makes before its own.

An event that fails them can never be applied, so each failure is a PoisonMessage (dead-lettered with the reason).
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any, TypeVar, cast

from google.protobuf.message import DecodeError, Message

from tend_common.messaging.consumer import Delivery, PoisonMessage

EventT = TypeVar("EventT", bound=Message)


def decode_event(delivery: Delivery, message_type: type[EventT], supported_versions: Collection[int]) -> EventT:
    """The delivery's event, when its schema version is supported, its body parses as `message_type`, and the event
    id in its `meta` is the message id the broker delivered it under."""
    if delivery.schema_version not in supported_versions:
        raise PoisonMessage(f"unsupported schema version {delivery.schema_version}")
    name = message_type.DESCRIPTOR.name
    try:
        event = message_type.FromString(delivery.body)
    except DecodeError as exc:
        article = "an" if name[:1] in "AEIOU" else "a"
        raise PoisonMessage(f"body is not {article} {name} message") from exc
    meta: Any = cast(Any, event).meta  # every Tend event carries tend.common.v1.EventMeta as `meta`
    if meta.event_id != delivery.event_id:
        raise PoisonMessage("message id and event id differ")
    return event


def require_fields(event: Message, *names: str) -> None:
    """Refuses the event, naming every one of `names` (in that order) that is empty: a scalar at its default, or a
    message field not set."""
    missing = [name for name in names if not _present(event, name)]
    if missing:
        raise PoisonMessage("missing " + ", ".join(missing))


def _present(event: Message, name: str) -> bool:
    if event.DESCRIPTOR.fields_by_name[name].message_type is not None:
        return event.HasField(name)
    return bool(getattr(event, name))
