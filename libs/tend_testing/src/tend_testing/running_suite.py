"""A fixture that starts the whole suite as real processes, with a tap on the event exchange that keeps a copy of
every message published, and the demo university's canary values."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pika
import psycopg
import pytest
import redis

from tend_common.messaging.topology import Topology, declare_exchanges
from tend_testing.backends import Backends
from tend_testing.namespaces import new_amqp_namespace
from tend_testing.suite import BACK_END_SERVICES, Suite, SuiteConfig, SuitePorts, run_command


@dataclass(frozen=True)
class PublishedMessage:
    producer: str
    routing_key: str
    event_id: str
    body: bytes


class EventTap:
    """A queue bound to every routing key of the suite's exchange."""

    def __init__(self, amqp_url: str, topology: Topology) -> None:
        self._amqp_url = amqp_url
        self.queue = topology.queue("tests", "tap")
        connection = pika.BlockingConnection(pika.URLParameters(amqp_url))
        channel = connection.channel()
        declare_exchanges(channel, topology)
        channel.queue_declare(self.queue, durable=True, arguments={"x-queue-type": "quorum"})
        channel.queue_bind(self.queue, topology.events_exchange, routing_key="#")
        connection.close()
        self.seen: list[PublishedMessage] = []

    def drain(self) -> list[PublishedMessage]:
        """Every message published so far (kept across calls)."""
        connection = pika.BlockingConnection(pika.URLParameters(self._amqp_url))
        channel = connection.channel()
        while True:
            method, properties, body = channel.basic_get(self.queue, auto_ack=True)
            if method is None:
                break
            self.seen.append(PublishedMessage(properties.app_id or "", method.routing_key, properties.message_id, body))
        connection.close()
        return self.seen


@dataclass
class RunningSuite:
    suite: Suite
    config: SuiteConfig
    tap: EventTap
    canaries: list[str]

    def database(self, service: str) -> str:
        return self.config.databases[service]


DatabaseFactory = Callable[[str | None], str]


def _canaries(identity_dsn: str) -> list[str]:
    from tend_identity.demo import demo_canaries

    with psycopg.connect(identity_dsn) as conn:
        values = demo_canaries(conn)
    assert len(values) > 400, "the demo university should have given every person canary values"
    return values


@pytest.fixture(scope="module")
def running_suite(
    backends: Backends,
    module_database_factory: DatabaseFactory,
    tmp_path_factory: pytest.TempPathFactory,
    _amqp_cleanup: None,
) -> Iterator[RunningSuite]:
    config = SuiteConfig(
        ports=SuitePorts.free(),
        databases={service: module_database_factory(f"tend_{service}.migrations") for service in BACK_END_SERVICES},
        amqp_url=backends.amqp_url,
        amqp_namespace=new_amqp_namespace(),
        redis_url=backends.redis_url,
        redis_prefix=f"test:{uuid.uuid4().hex[:12]}:checkin:",
    )
    tap = EventTap(backends.amqp_url, Topology(config.amqp_namespace))
    run_command(config, "identity", "load-demo")
    log_dir = Path(tmp_path_factory.mktemp("suite-logs"))
    suite = Suite(config, log_dir)
    try:
        suite.start()
        yield RunningSuite(suite, config, tap, _canaries(config.databases["identity"]))
    finally:
        suite.stop()
        client = redis.Redis.from_url(backends.redis_url)
        keys = list(client.scan_iter(match=f"{config.redis_prefix}*"))
        if keys:
            client.delete(*keys)
        client.close()
