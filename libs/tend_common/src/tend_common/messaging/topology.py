"""Names and declarations of the exchanges and queues.

Producers publish to one durable topic exchange; each consumer owns a durable quorum queue bound to the routing keys
it needs. A namespace prefixes every name, so that tests (and several suites on one broker) never share a queue.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from pika.adapters.blocking_connection import BlockingChannel

# Redeliveries before RabbitMQ gives up on a message and dead-letters it, so a message that crashes its consumer
# cannot loop forever.
DEFAULT_DELIVERY_LIMIT = 20


@dataclass(frozen=True)
class Topology:
    """Exchange and queue names within one namespace."""

    namespace: str = "tend"

    @property
    def events_exchange(self) -> str:
        return f"{self.namespace}.events"

    @property
    def dead_letter_exchange(self) -> str:
        return f"{self.namespace}.dead-letter"

    def queue(self, consumer: str, purpose: str) -> str:
        return f"{self.namespace}.{consumer}.{purpose}"

    @staticmethod
    def dead_letter_queue(queue: str) -> str:
        return f"{queue}.dead-letter"


def declare_exchanges(channel: BlockingChannel, topology: Topology) -> None:
    channel.exchange_declare(topology.events_exchange, exchange_type="topic", durable=True)
    channel.exchange_declare(topology.dead_letter_exchange, exchange_type="direct", durable=True)


def declare_consumer_queue(
    channel: BlockingChannel,
    topology: Topology,
    queue: str,
    routing_keys: Sequence[str],
    delivery_limit: int = DEFAULT_DELIVERY_LIMIT,
) -> None:
    """Declares `queue` (quorum, durable) with its dead-letter queue, and binds it to `routing_keys`."""
    declare_exchanges(channel, topology)
    dead_letters = topology.dead_letter_queue(queue)
    channel.queue_declare(dead_letters, durable=True, arguments={"x-queue-type": "quorum"})
    channel.queue_bind(dead_letters, topology.dead_letter_exchange, routing_key=queue)
    channel.queue_declare(
        queue,
        durable=True,
        arguments={
            "x-queue-type": "quorum",
            "x-dead-letter-exchange": topology.dead_letter_exchange,
            "x-dead-letter-routing-key": queue,
            "x-delivery-limit": delivery_limit,
        },
    )
    for key in routing_keys:
        channel.queue_bind(queue, topology.events_exchange, routing_key=key)
