"""A confirming publisher that keeps many publishes in flight on one channel.

The ConfirmingPublisher waits for each confirm before the next publish, so one process is capped at one broker round
trip per event. Here an I/O thread owns the connection (pika's SelectConnection); any number of caller threads hand
it events and each waits on its own future. Events handed over before the I/O thread picked up earlier ones go with
them, so a busy process wakes that thread once per batch rather than once per event. Confirms are matched by
delivery tag (including `multiple` acks), the frames of the events picked up together go out in one write, a
mandatory publish no queue takes is matched by its basic.return (which the broker sends before that publish's ack),
and a lost connection fails every publish in flight, then reconnects.
A caller still counts an event as sent only when its own future says the broker confirmed it.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections import deque
from collections.abc import Iterator, Sequence
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from typing import Any

import pika
import pika.exceptions
from pika.adapters.select_connection import SelectConnection
from pika.channel import Channel
from pika.spec import Basic, BasicProperties

from tend_common.messaging.envelope import CONTENT_TYPE, OutgoingEvent
from tend_common.messaging.publisher import PublishError, UnroutableEvent
from tend_common.messaging.topology import Topology, declare_exchanges

log = logging.getLogger(__name__)


class _GatheringConnection(SelectConnection):  # type: ignore[misc]  # pika ships no type hints
    """A SelectConnection that can send the frames of many publishes in one write. pika hands the socket each frame
    on its own (method, header, body: three send calls per event), which was most of a publish's CPU time.

    It overrides pika's internal `_adapter_emit_data`, so pika is pinned in requirements.txt; the relay and publisher
    tests against the real broker fail if an upgrade changes that hook."""

    _gathered: list[bytes] | None = None

    @contextlib.contextmanager
    def gathering_writes(self) -> Iterator[None]:
        """Frames sent inside the block go out together, in order, when it ends."""
        self._gathered = []
        try:
            yield
        finally:
            gathered, self._gathered = self._gathered, None
            if gathered and not self.is_closed:
                super()._adapter_emit_data(b"".join(gathered))

    def _adapter_emit_data(self, data: bytes) -> None:
        if self._gathered is not None:
            self._gathered.append(data)
        else:
            super()._adapter_emit_data(data)


# How often the I/O thread also picks up handed-over events on its own: a safety net for a wake-up that went to a
# connection which closed before it ran.
_SWEEP_SECONDS = 0.1


class PipelinedPublisher:
    """Thread-safe; implements EventPublisher. One connection and one channel per instance (per process)."""

    def __init__(
        self,
        amqp_url: str,
        topology: Topology,
        producer: str,
        confirm_timeout: float = 10.0,
        connect_timeout: float = 5.0,
        reconnect_delay: float = 0.5,
    ) -> None:
        self._params = pika.URLParameters(amqp_url)
        self._topology = topology
        self._producer = producer
        self._confirm_timeout = confirm_timeout
        self._connect_timeout = connect_timeout
        self._reconnect_delay = reconnect_delay
        self._ready = threading.Event()
        self._stopping = threading.Event()
        self._connection: _GatheringConnection | None = None
        # Touched on the I/O thread only.
        self._channel: Channel | None = None
        self._last_tag = 0
        self._in_flight: dict[int, tuple[Future[None], str]] = {}
        self._tags_by_event: dict[str, deque[int]] = {}
        self._returned: set[int] = set()
        # Events handed over by callers and not yet picked up by the I/O thread, and whether it was woken for them.
        self._handed_over: deque[tuple[OutgoingEvent, Future[None]]] = deque()
        self._wake_requested = False
        self._handover_lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, name="amqp-pipelined-publisher", daemon=True)
        self._thread.start()

    # --- callers' side ---

    def publish(self, event: OutgoingEvent) -> None:
        """Returns once the broker confirmed `event`; raises PublishError if it refused it, no queue took it, the
        connection was lost with it in flight, or no confirm came in time."""
        future: Future[None] = Future()
        self._hand_over([(event, future)])
        try:
            future.result(timeout=self._confirm_timeout)
        except FutureTimeout:
            raise PublishError("the broker did not confirm the event in time") from None

    def publish_all(self, events: Sequence[OutgoingEvent]) -> list[PublishError | None]:
        """Publishes `events` in this order with all their confirms outstanding at once, and returns each one's
        outcome in the same order: None once the broker confirmed it, else why it may not have been delivered.
        Waits at most the confirm timeout (from the hand-over) for the whole batch."""
        if not events:
            return []
        futures: list[Future[None]] = [Future() for _ in events]
        try:
            self._hand_over(list(zip(events, futures, strict=True)))
        except PublishError as exc:
            return [exc] * len(events)
        deadline = time.monotonic() + self._confirm_timeout
        outcomes: list[PublishError | None] = []
        for future in futures:
            try:
                future.result(timeout=max(0.0, deadline - time.monotonic()))
            except PublishError as exc:
                outcomes.append(exc)
            except FutureTimeout:
                outcomes.append(PublishError("the broker did not confirm the event in time"))
            else:
                outcomes.append(None)
        return outcomes

    def _hand_over(self, batch: list[tuple[OutgoingEvent, Future[None]]]) -> None:
        """Queues `batch` for the I/O thread and wakes it unless a wake-up is already pending."""
        if not self._ready.wait(self._connect_timeout):
            raise PublishError("broker unreachable")
        connection = self._connection
        if connection is None:
            raise PublishError("broker unreachable")
        with self._handover_lock:
            self._handed_over.extend(batch)
            wake, self._wake_requested = not self._wake_requested, True
        if wake:
            try:
                connection.ioloop.add_callback_threadsafe(self._send_handed_over)
            except (pika.exceptions.AMQPError, RuntimeError, AttributeError, OSError) as exc:
                self._fail_handed_over(f"broker unreachable: {type(exc).__name__}")
                raise PublishError(f"broker unreachable: {type(exc).__name__}") from exc

    def close(self) -> None:
        """Stops taking events, closes the connection (failing anything still in flight) and ends the I/O thread."""
        self._stopping.set()
        self._ready.clear()
        connection = self._connection
        if connection is not None:
            with contextlib.suppress(Exception):
                connection.ioloop.add_callback_threadsafe(self._close_connection)
        self._thread.join(10)

    # --- the I/O thread ---

    def _run(self) -> None:
        delay = self._reconnect_delay
        while not self._stopping.is_set():
            try:
                self._declare_exchanges()
                self._connection = _GatheringConnection(
                    self._params,
                    on_open_callback=self._on_connection_open,
                    on_open_error_callback=self._on_connection_open_error,
                    on_close_callback=self._on_connection_closed,
                )
                self._connection.ioloop.start()
            except (pika.exceptions.AMQPError, OSError) as exc:
                log.warning("publisher connection failed", extra={"fields": {"error": type(exc).__name__}})
            self._ready.clear()
            self._fail_in_flight("the connection to the broker was lost")
            self._fail_handed_over("the connection to the broker was lost")
            # Back off while the broker stays unreachable; start again from the short delay after a good connection.
            delay = self._reconnect_delay if self._channel is not None else min(delay * 2, 5.0)
            self._channel = None
            if self._stopping.wait(delay):
                break

    def _declare_exchanges(self) -> None:
        connection = pika.BlockingConnection(self._params)
        try:
            declare_exchanges(connection.channel(), self._topology)
        finally:
            with contextlib.suppress(pika.exceptions.AMQPError):
                connection.close()

    def _on_connection_open(self, connection: SelectConnection) -> None:
        if self._stopping.is_set():
            connection.close()
            return
        connection.channel(on_open_callback=self._on_channel_open)

    def _on_connection_open_error(self, connection: SelectConnection, error: BaseException) -> None:
        log.warning("publisher could not connect", extra={"fields": {"error": type(error).__name__}})
        connection.ioloop.stop()

    def _on_connection_closed(self, connection: SelectConnection, reason: BaseException) -> None:
        if not self._stopping.is_set():
            log.warning("publisher connection closed", extra={"fields": {"error": type(reason).__name__}})
        self._ready.clear()
        connection.ioloop.stop()

    def _on_channel_open(self, channel: Channel) -> None:
        channel.add_on_close_callback(self._on_channel_closed)
        channel.add_on_return_callback(self._on_return)
        channel.confirm_delivery(self._on_confirm, callback=lambda _frame: self._on_confirm_mode(channel))

    def _on_confirm_mode(self, channel: Channel) -> None:
        self._channel = channel
        self._last_tag = 0
        self._ready.set()
        self._sweep()

    def _sweep(self) -> None:
        connection = self._connection
        if connection is None or not connection.is_open:
            return
        self._send_handed_over()
        connection.ioloop.call_later(_SWEEP_SECONDS, self._sweep)

    def _on_channel_closed(self, _channel: Channel, reason: BaseException) -> None:
        # A channel closed by the broker (for instance after a bad publish) takes its in-flight publishes with it;
        # close the connection too so the I/O loop reconnects from a clean state.
        self._ready.clear()
        self._fail_in_flight(f"the channel was closed: {type(reason).__name__}")
        connection = self._connection
        if connection is not None and connection.is_open:
            connection.close()

    def _close_connection(self) -> None:
        connection = self._connection
        if connection is None:
            return
        if connection.is_closing or connection.is_closed:
            connection.ioloop.stop()
            return
        if connection.is_open:
            connection.close()
        # Still opening: closing now would abort pika's connection workflow; _on_connection_open closes it instead.

    def _send_handed_over(self) -> None:
        with self._handover_lock:
            batch, self._handed_over = self._handed_over, deque()
            self._wake_requested = False
        connection = self._connection
        gathering = connection.gathering_writes() if connection is not None else contextlib.nullcontext()
        with gathering:
            for event, future in batch:
                self._send(event, future)

    def _fail_handed_over(self, reason: str) -> None:
        with self._handover_lock:
            batch, self._handed_over = self._handed_over, deque()
            self._wake_requested = False
        for _event, future in batch:
            if not future.done():
                future.set_exception(PublishError(reason))

    def _send(self, event: OutgoingEvent, future: Future[None]) -> None:
        channel = self._channel
        if channel is None or not channel.is_open or not self._ready.is_set():
            future.set_exception(PublishError("broker unreachable"))
            return
        try:
            channel.basic_publish(
                exchange=self._topology.events_exchange,
                routing_key=event.routing_key,
                body=event.body,
                properties=BasicProperties(
                    content_type=CONTENT_TYPE,
                    delivery_mode=pika.DeliveryMode.Persistent,
                    message_id=event.event_id,
                    type=event.type_name,
                    app_id=self._producer,
                    headers={"schema_version": event.schema_version},
                ),
                mandatory=True,
            )
        except (pika.exceptions.AMQPError, OSError) as exc:
            future.set_exception(PublishError(f"broker unreachable: {type(exc).__name__}"))
            return
        self._last_tag += 1
        self._in_flight[self._last_tag] = (future, event.event_id)
        self._tags_by_event.setdefault(event.event_id, deque()).append(self._last_tag)

    def _on_return(self, _channel: Channel, _method: Basic.Return, properties: BasicProperties, _body: bytes) -> None:
        tags = self._tags_by_event.get(properties.message_id or "")
        if tags:
            self._returned.add(tags[0])

    def _on_confirm(self, frame: Any) -> None:
        method = frame.method
        acked = isinstance(method, Basic.Ack)
        last = method.delivery_tag
        tags = [last]
        if method.multiple:
            # In-flight tags are kept in publish order, so the ones this ack covers come first.
            tags = []
            for tag in self._in_flight:
                if tag > last:
                    break
                tags.append(tag)
        for tag in tags:
            entry = self._in_flight.pop(tag, None)
            if entry is None:
                continue
            future, event_id = entry
            self._forget(tag, event_id)
            if not acked:
                future.set_exception(PublishError("the broker refused the event"))
            elif tag in self._returned:
                self._returned.discard(tag)
                future.set_exception(UnroutableEvent("no queue is bound for the event's routing key"))
            else:
                future.set_result(None)

    def _forget(self, tag: int, event_id: str) -> None:
        tags = self._tags_by_event.get(event_id)
        if tags is not None:
            with contextlib.suppress(ValueError):
                tags.remove(tag)
            if not tags:
                del self._tags_by_event[event_id]

    def _fail_in_flight(self, reason: str) -> None:
        in_flight, self._in_flight = self._in_flight, {}
        self._tags_by_event.clear()
        self._returned.clear()
        for future, _event_id in in_flight.values():
            if not future.done():
                future.set_exception(PublishError(reason))
