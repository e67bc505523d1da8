"""A consumer that acknowledges only after the handler's effect is committed, and dead-letters poison messages.

The handler is called with one delivery at a time. It must commit its effect together with the event id (see
`inbox.claim_event`) before returning, because the acknowledgement follows straight after. Outcomes:
- the handler returns: the delivery is acknowledged;
- the handler raises PoisonMessage (or the message cannot be read at all): the message is published, with the
  reason, to the queue's dead-letter queue (confirmed), then acknowledged: kept, never retried;
- the handler raises anything else (a database outage, say): the delivery is returned to the queue after a pause
  and retried; RabbitMQ's delivery limit dead-letters it if it never succeeds.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pika
import pika.exceptions
from pika.adapters.blocking_connection import BlockingChannel
from pika.spec import Basic, BasicProperties

from tend_common.messaging.topology import Topology, declare_consumer_queue

log = logging.getLogger(__name__)


class PoisonMessage(Exception):
    """The message can never be applied (malformed, unknown schema version); it goes to the dead-letter queue."""


@dataclass(frozen=True)
class Delivery:
    """One message as the handler sees it."""

    routing_key: str
    event_id: str
    type_name: str
    schema_version: int
    body: bytes
    redelivered: bool


Handler = Callable[[Delivery], None]


def _read(method: Basic.Deliver, properties: BasicProperties, body: bytes) -> Delivery:
    if not properties.message_id:
        raise PoisonMessage("message has no message_id (event id)")
    headers: Mapping[str, Any] = properties.headers or {}
    return Delivery(
        routing_key=method.routing_key or "",
        event_id=properties.message_id,
        type_name=properties.type or "",
        schema_version=int(headers.get("schema_version", 0)),
        body=body,
        redelivered=bool(method.redelivered),
    )


class Consumer:
    """Consumes one queue on its own thread until `stop`; reconnects after the broker goes away."""

    def __init__(
        self,
        amqp_url: str,
        topology: Topology,
        queue: str,
        routing_keys: Sequence[str],
        handler: Handler,
        prefetch: int = 50,
        retry_pause_seconds: float = 1.0,
    ) -> None:
        self._params = pika.URLParameters(amqp_url)
        self._topology = topology
        self.queue = queue
        self._routing_keys = routing_keys
        self._handler = handler
        self._prefetch = prefetch
        self._retry_pause = retry_pause_seconds
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self.ready = threading.Event()

    def declare(self) -> None:
        """Declares the queue and its bindings, so that events published from now on are kept even before the
        consumer runs."""
        connection = pika.BlockingConnection(self._params)
        try:
            declare_consumer_queue(connection.channel(), self._topology, self.queue, self._routing_keys)
        finally:
            connection.close()

    def start(self) -> None:
        self._thread = threading.Thread(target=self.run, name=f"consumer:{self.queue}", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 30.0) -> None:
        """Stops taking deliveries; the one in hand is finished and acknowledged first."""
        self._stopping.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def run(self) -> None:
        while not self._stopping.is_set():
            try:
                self._consume()
            except (pika.exceptions.AMQPError, OSError) as exc:
                self.ready.clear()
                log.warning(
                    "consumer lost its connection", extra={"fields": {"queue": self.queue, "error": type(exc).__name__}}
                )
                self._stopping.wait(self._retry_pause)

    def _consume(self) -> None:
        connection = pika.BlockingConnection(self._params)
        try:
            channel = connection.channel()
            declare_consumer_queue(channel, self._topology, self.queue, self._routing_keys)
            dead_letter_channel = connection.channel()
            dead_letter_channel.confirm_delivery()
            channel.basic_qos(prefetch_count=self._prefetch)
            self.ready.set()
            for method, properties, body in channel.consume(self.queue, inactivity_timeout=0.5):
                if self._stopping.is_set():
                    break
                if method is None:
                    continue
                self._deliver(channel, dead_letter_channel, method, properties, body)
            channel.cancel()
        finally:
            if connection.is_open:
                connection.close()

    def _deliver(
        self,
        channel: BlockingChannel,
        dead_letter_channel: BlockingChannel,
        method: Basic.Deliver,
        properties: BasicProperties,
        body: bytes,
    ) -> None:
        tag = method.delivery_tag
        try:
            delivery = _read(method, properties, body)
            self._handler(delivery)
        except PoisonMessage as exc:
            self._dead_letter(dead_letter_channel, method, properties, body, str(exc))
            channel.basic_ack(tag)
        except Exception as exc:
            log.exception(
                "handler failed; the message will be retried",
                extra={"fields": {"queue": self.queue, "event_id": properties.message_id, "error": type(exc).__name__}},
            )
            self._stopping.wait(self._retry_pause)
            channel.basic_nack(tag, requeue=True)
        else:
            channel.basic_ack(tag)

    def _dead_letter(
        self, channel: BlockingChannel, method: Basic.Deliver, properties: BasicProperties, body: bytes, reason: str
    ) -> None:
        headers = dict(properties.headers or {})
        headers.update({"x-tend-reason": reason, "x-tend-original-routing-key": method.routing_key})
        channel.basic_publish(
            exchange=self._topology.dead_letter_exchange,
            routing_key=self.queue,
            body=body,
            properties=pika.BasicProperties(
                content_type=properties.content_type,
                delivery_mode=pika.DeliveryMode.Persistent,
                message_id=properties.message_id,
                type=properties.type,
                app_id=properties.app_id,
                headers=headers,
            ),
            mandatory=True,
        )
        log.warning(
            "message dead-lettered",
            extra={"fields": {"queue": self.queue, "event_id": properties.message_id, "reason": reason}},
        )
