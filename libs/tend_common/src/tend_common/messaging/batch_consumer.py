"""A consumer that applies deliveries in batches: one transaction and one acknowledgement per batch.

Committing each event on its own costs a transaction per event (~650 per second here); a batch shares one. The
handler gets up to `max_batch` deliveries, collected for at most `max_wait_seconds`, and must commit the effect of
every delivery it does not report as poison, claiming each event id (see `claim_events`) in that same transaction,
before it returns. Then:
- the deliveries it reports as poison (with their reasons), and any message that cannot be read at all, are published
  to the queue's dead-letter queue with the reason (confirmed), and the whole batch is acknowledged at once
  (basic_ack with multiple=True), only after the commit;
- if the handler raises, nothing is acknowledged: after a pause the batch is returned to the queue and delivered
  again. A delivery that has already failed `isolate_after` times is then applied in a batch of its own, so one
  message that always fails cannot hold back the others; RabbitMQ's delivery limit dead-letters it in the end.
A crash anywhere before the acknowledgement redelivers the batch, and the claimed event ids make that change nothing.

While one batch is applied (on a worker thread, waiting for the database), the next is collected from the broker;
batches are applied one at a time and settled in order, and every broker call stays on the connection's thread.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import pika
import pika.exceptions
import psycopg
from pika.adapters.blocking_connection import BlockingChannel
from pika.spec import Basic, BasicProperties

from tend_common.messaging.consumer import Delivery, PoisonMessage, _read
from tend_common.messaging.topology import Topology, declare_consumer_queue

log = logging.getLogger(__name__)

# The handler's answer: position in the batch -> why that delivery can never be applied.
PoisonReasons = Mapping[int, str]
BatchHandler = Callable[[Sequence[Delivery]], PoisonReasons]


def claim_events(cursor: psycopg.Cursor[Any], consumer: str, event_ids: Sequence[str]) -> set[str]:
    """Records that `consumer` applies each of `event_ids`; returns those not applied before (the caller applies
    only these). Call inside the transaction that applies the effects, as `inbox.claim_event`."""
    if not event_ids:
        return set()
    cursor.execute(
        "INSERT INTO inbox_processed_events (consumer, event_id) SELECT %s, unnest(%s::text[])"
        " ON CONFLICT DO NOTHING RETURNING event_id",
        (consumer, sorted(set(event_ids))),
    )
    return {str(row[0]) for row in cursor.fetchall()}


@dataclass(frozen=True)
class _Message:
    method: Basic.Deliver
    properties: BasicProperties
    body: bytes

    @property
    def failures(self) -> int:
        # Quorum queues count earlier deliveries that were returned or never settled.
        headers: Mapping[str, Any] = self.properties.headers or {}
        try:
            return int(headers.get("x-delivery-count", 0))
        except (TypeError, ValueError):
            return 0


@dataclass(frozen=True)
class _InFlight:
    """A batch handed to the applier: its messages, the readable ones with their deliveries, the unreadable ones
    with their reasons, and the handler's eventual answer."""

    batch: list[_Message]
    readable: list[tuple[_Message, Delivery]]
    poison: list[tuple[_Message, str]]
    result: Future[PoisonReasons]


class BatchConsumer:
    """Consumes one queue in batches on its own thread until `stop`; reconnects after the broker goes away."""

    def __init__(
        self,
        amqp_url: str,
        topology: Topology,
        queue: str,
        routing_keys: Sequence[str],
        handler: BatchHandler,
        max_batch: int = 500,
        max_wait_seconds: float = 0.05,
        prefetch: int | None = None,
        retry_pause_seconds: float = 1.0,
        isolate_after: int = 2,
        after_batch: Callable[[], None] | None = None,
    ) -> None:
        if max_batch < 1:
            raise ValueError("max_batch must be at least 1")
        self._params = pika.URLParameters(amqp_url)
        self._topology = topology
        self.queue = queue
        self._routing_keys = routing_keys
        self._handler = handler
        self._max_batch = max_batch
        self._max_wait = max_wait_seconds
        self._prefetch = prefetch or 2 * max_batch
        self._retry_pause = retry_pause_seconds
        self._isolate_after = isolate_after
        self._after_batch = after_batch
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self.ready = threading.Event()

    def declare(self) -> None:
        """Declares the queue and its bindings, so events published from now on are kept even before consuming."""
        connection = pika.BlockingConnection(self._params)
        try:
            declare_consumer_queue(connection.channel(), self._topology, self.queue, self._routing_keys)
        finally:
            connection.close()

    def start(self) -> None:
        self._thread = threading.Thread(target=self.run, name=f"batch-consumer:{self.queue}", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 30.0) -> None:
        """Stops taking deliveries; the batch in hand is finished and acknowledged first."""
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
        # One batch is applied on this worker while the next is collected on the connection's thread, so waiting for
        # the database and reading from the broker overlap. All broker calls stay on the connection's thread.
        applier = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"apply:{self.queue}")
        in_flight: _InFlight | None = None
        try:
            channel = connection.channel()
            declare_consumer_queue(channel, self._topology, self.queue, self._routing_keys)
            dead_letter_channel = connection.channel()
            dead_letter_channel.confirm_delivery()
            channel.basic_qos(prefetch_count=self._prefetch)
            self.ready.set()
            pending: list[_Message] = []
            first_at = 0.0
            for method, properties, body in channel.consume(self.queue, inactivity_timeout=self._max_wait):
                if in_flight is not None and in_flight.result.done():
                    self._settle(channel, dead_letter_channel, in_flight)
                    in_flight = None
                if method is not None:
                    message = _Message(method, properties, body)
                    if message.failures >= self._isolate_after:
                        for batch in (pending, [message]):
                            in_flight = self._hand_over(channel, dead_letter_channel, applier, in_flight, batch)
                        pending = []
                        continue
                    if not pending:
                        first_at = time.monotonic()
                    pending.append(message)
                stopping = self._stopping.is_set()
                due = len(pending) >= self._max_batch or time.monotonic() - first_at >= self._max_wait
                if pending and (due or method is None or stopping):
                    in_flight = self._hand_over(channel, dead_letter_channel, applier, in_flight, pending)
                    pending = []
                if stopping:
                    break
            if in_flight is not None:
                in_flight.result.exception()  # waits
                self._settle(channel, dead_letter_channel, in_flight)
            channel.cancel()
        finally:
            # A batch still being applied finishes (its messages come back if it was not acknowledged) before a new
            # connection may deliver them again.
            applier.shutdown(wait=True)
            if connection.is_open:
                connection.close()

    def _hand_over(
        self,
        channel: BlockingChannel,
        dead_letter_channel: BlockingChannel,
        applier: ThreadPoolExecutor,
        in_flight: _InFlight | None,
        batch: list[_Message],
    ) -> _InFlight | None:
        """Settles the batch being applied (waiting for it if need be), then starts applying `batch`."""
        if not batch:
            return in_flight
        if in_flight is not None:
            in_flight.result.exception()  # waits
            self._settle(channel, dead_letter_channel, in_flight)
        readable: list[tuple[_Message, Delivery]] = []
        poison: list[tuple[_Message, str]] = []
        for message in batch:
            try:
                readable.append((message, _read(message.method, message.properties, message.body)))
            except PoisonMessage as exc:
                poison.append((message, str(exc)))
        deliveries = [delivery for _message, delivery in readable]
        return _InFlight(batch, readable, poison, applier.submit(self._apply, deliveries))

    def _apply(self, deliveries: list[Delivery]) -> PoisonReasons:
        """Runs on the applier: the handler commits the batch; then whatever follows a batch (signing a tree head,
        say), which must never cost the batch itself."""
        reasons = self._handler(deliveries) if deliveries else {}
        if self._after_batch is not None:
            try:
                self._after_batch()
            except Exception as exc:
                log.warning("after-batch step failed", extra={"fields": {"error": type(exc).__name__}})
        return reasons

    def _settle(self, channel: BlockingChannel, dead_letter_channel: BlockingChannel, done: _InFlight) -> None:
        """Acknowledges an applied batch after dead-lettering its poison, or returns a failed one to the queue."""
        last_tag = done.batch[-1].method.delivery_tag
        failure = done.result.exception()
        if failure is not None:
            log.error(
                "batch handler failed; the batch will be retried",
                exc_info=failure,
                extra={"fields": {"queue": self.queue, "size": len(done.batch), "error": type(failure).__name__}},
            )
            self._stopping.wait(self._retry_pause)
            channel.basic_nack(last_tag, multiple=True, requeue=True)
            return
        reasons = done.result.result()
        poison = [*done.poison, *((done.readable[i][0], reason) for i, reason in sorted(reasons.items()))]
        for message, reason in poison:
            self._dead_letter(dead_letter_channel, message, reason)
        channel.basic_ack(last_tag, multiple=True)

    def _dead_letter(self, channel: BlockingChannel, message: _Message, reason: str) -> None:
        properties = message.properties
        headers = dict(properties.headers or {})
        headers.update({"x-tend-reason": reason, "x-tend-original-routing-key": message.method.routing_key})
        channel.basic_publish(
            exchange=self._topology.dead_letter_exchange,
            routing_key=self.queue,
            body=message.body,
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
