"""Publishers: an event counts as sent only once the broker has confirmed it."""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Sequence
from typing import TYPE_CHECKING, Protocol

import pika
import pika.exceptions

from tend_common.messaging.envelope import CONTENT_TYPE, OutgoingEvent
from tend_common.messaging.topology import Topology, declare_exchanges

if TYPE_CHECKING:
    from tend_common.messaging.pipelined_publisher import PipelinedPublisher

log = logging.getLogger(__name__)


class PublishError(Exception):
    """The broker did not confirm the event: it may or may not have been delivered, so the caller must retry it
    (with the same event id) or report failure; it must never treat it as sent."""


class UnroutableEvent(PublishError):
    """The broker returned the (mandatory) event: no queue is bound for its routing key. The broker itself is
    reachable, so other events may still go."""


class EventPublisher(Protocol):
    """Publishes one event and returns only after the broker confirmed it; raises PublishError otherwise."""

    def publish(self, event: OutgoingEvent) -> None: ...

    def close(self) -> None: ...


class BatchPublisher(Protocol):
    """Publishes many events with their confirms outstanding at once (one broker round trip per batch rather than
    per event) and reports each event's outcome, in order: None once confirmed, else a PublishError."""

    def publish_all(self, events: Sequence[OutgoingEvent]) -> list[PublishError | None]: ...


def publish_all(publisher: EventPublisher, events: Sequence[OutgoingEvent]) -> list[PublishError | None]:
    """Each event's outcome, in order; pipelined if `publisher` can (a BatchPublisher), else one by one."""
    batch_publish = getattr(publisher, "publish_all", None)
    if batch_publish is not None:
        outcomes: list[PublishError | None] = batch_publish(events)
        return outcomes
    one_by_one: list[PublishError | None] = []
    for event in events:
        try:
            publisher.publish(event)
        except PublishError as exc:
            one_by_one.append(exc)
        else:
            one_by_one.append(None)
    return one_by_one


class ConfirmingPublisher:
    """Publishes on one channel in confirm mode, with the mandatory flag so an event no queue would take is an
    error rather than silently dropped. Thread-safe; reconnects once per publish after a lost connection.

    `publish_all` (a BatchPublisher, used by the outbox relay) goes through a PipelinedPublisher with the same
    settings, opened the first time it is needed: a blocking channel can only wait for each confirm in turn."""

    def __init__(self, amqp_url: str, topology: Topology, producer: str) -> None:
        self._params = pika.URLParameters(amqp_url)
        self._topology = topology
        self._producer = producer
        self._lock = threading.Lock()
        self._connection: pika.BlockingConnection | None = None
        self._channel: pika.adapters.blocking_connection.BlockingChannel | None = None
        self._amqp_url = amqp_url
        self._pipelined: PipelinedPublisher | None = None
        self._pipelined_lock = threading.Lock()
        self._closed = False

    def _connect(self) -> pika.adapters.blocking_connection.BlockingChannel:
        if self._channel is not None and self._channel.is_open:
            return self._channel
        self._drop()
        self._connection = pika.BlockingConnection(self._params)
        channel = self._connection.channel()
        channel.confirm_delivery()
        declare_exchanges(channel, self._topology)
        self._channel = channel
        return channel

    def _drop(self) -> None:
        if self._connection is not None and self._connection.is_open:
            with contextlib.suppress(pika.exceptions.AMQPError):
                self._connection.close()
        self._connection = None
        self._channel = None

    def _publish_once(self, event: OutgoingEvent) -> None:
        channel = self._connect()
        channel.basic_publish(
            exchange=self._topology.events_exchange,
            routing_key=event.routing_key,
            body=event.body,
            properties=pika.BasicProperties(
                content_type=CONTENT_TYPE,
                delivery_mode=pika.DeliveryMode.Persistent,
                message_id=event.event_id,
                type=event.type_name,
                app_id=self._producer,
                headers={"schema_version": event.schema_version},
            ),
            mandatory=True,
        )

    def publish(self, event: OutgoingEvent) -> None:
        with self._lock:
            for attempt in (1, 2):
                try:
                    self._publish_once(event)
                    return
                except pika.exceptions.UnroutableError as exc:
                    raise UnroutableEvent(f"no queue is bound for {event.routing_key}") from exc
                except pika.exceptions.NackError as exc:
                    raise PublishError("the broker refused the event") from exc
                except (pika.exceptions.AMQPError, OSError) as exc:
                    self._drop()
                    if attempt == 2:
                        raise PublishError(f"broker unreachable: {type(exc).__name__}") from exc
                    log.warning("publish failed, reconnecting", extra={"fields": {"error": type(exc).__name__}})

    def publish_all(self, events: Sequence[OutgoingEvent]) -> list[PublishError | None]:
        try:
            pipelined = self._pipelined_publisher()
        except PublishError as exc:
            return [exc] * len(events)
        return pipelined.publish_all(events)

    def _pipelined_publisher(self) -> PipelinedPublisher:
        # Imported here: the pipelined publisher imports PublishError from this module.
        from tend_common.messaging.pipelined_publisher import PipelinedPublisher

        with self._pipelined_lock:
            if self._closed:
                raise PublishError("the publisher is closed")
            if self._pipelined is None:
                self._pipelined = PipelinedPublisher(self._amqp_url, self._topology, self._producer)
            return self._pipelined

    def close(self) -> None:
        with self._pipelined_lock:
            self._closed = True
            pipelined, self._pipelined = self._pipelined, None
        if pipelined is not None:
            pipelined.close()
        with self._lock:
            self._drop()


class InMemoryPublisher:
    """Keeps published events in a list; for unit tests of code that publishes. Can be told to fail."""

    def __init__(self) -> None:
        self.events: list[OutgoingEvent] = []
        self.fail_with: Exception | None = None

    def publish(self, event: OutgoingEvent) -> None:
        if self.fail_with is not None:
            raise PublishError("in-memory publisher set to fail") from self.fail_with
        self.events.append(event)

    def close(self) -> None:
        pass
