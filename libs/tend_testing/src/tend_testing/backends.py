"""Where the real PostgreSQL, Redis and RabbitMQ for tests are: containers when a Docker engine answers, otherwise
the services running on this machine's standard ports. A missing service fails the run with the command that starts
it; it never skips a test."""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass

START_COMMANDS = {
    "PostgreSQL": "pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start",
    "Redis": 'redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no',
    "RabbitMQ": "rabbitmq-server -detached",
}


class BackendMissing(RuntimeError):
    """A service the tests need does not answer."""


@dataclass(frozen=True)
class Backends:
    """Connection addresses of the three backing services."""

    postgres_admin_dsn: str
    redis_url: str
    amqp_url: str
    via_containers: bool


def _answers(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=2.0):
            return True
    except OSError:
        return False


def _docker_engine_reachable() -> bool:
    if os.environ.get("TEND_TEST_NO_CONTAINERS"):
        return False
    try:
        import docker

        docker.from_env(timeout=3).ping()
        return True
    except Exception:
        return False


def _local() -> Backends:
    wanted = {"PostgreSQL": ("127.0.0.1", 5432), "Redis": ("127.0.0.1", 6379), "RabbitMQ": ("127.0.0.1", 5672)}
    missing = [name for name, (host, port) in wanted.items() if not _answers(host, port)]
    if missing:
        lines = [
            f"  {name} is not answering on {wanted[name][0]}:{wanted[name][1]}. Start it with:\n"
            f"    {START_COMMANDS[name]}"
            for name in missing
        ]
        raise BackendMissing("The tests need real services and found none in Docker or locally:\n" + "\n".join(lines))
    return Backends(
        postgres_admin_dsn=os.environ.get("TEND_TEST_PG_ADMIN_DSN", "postgresql://postgres@127.0.0.1:5432/postgres"),
        redis_url=os.environ.get("TEND_TEST_REDIS_URL", "redis://127.0.0.1:6379/0"),
        amqp_url=os.environ.get("TEND_TEST_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/%2F"),
        via_containers=False,
    )


class _Containers:
    """Starts one container of each service for the whole test session."""

    def __init__(self) -> None:
        from testcontainers.postgres import PostgresContainer
        from testcontainers.rabbitmq import RabbitMqContainer
        from testcontainers.redis import RedisContainer

        self._postgres = PostgresContainer("postgres:15", username="postgres", password="postgres", dbname="postgres")  # noqa: S106 (throwaway container)
        self._redis = RedisContainer("redis:7")
        self._rabbit = RabbitMqContainer("rabbitmq:3.13")
        for container in (self._postgres, self._redis, self._rabbit):
            container.start()

    def backends(self) -> Backends:
        pg = self._postgres
        redis_host = self._redis.get_container_host_ip()
        redis_port = self._redis.get_exposed_port(6379)
        rabbit = self._rabbit
        return Backends(
            postgres_admin_dsn=(
                f"postgresql://postgres:postgres@{pg.get_container_host_ip()}:{pg.get_exposed_port(5432)}/postgres"
            ),
            redis_url=f"redis://{redis_host}:{redis_port}/0",
            amqp_url=(f"amqp://guest:guest@{rabbit.get_container_host_ip()}:{rabbit.get_exposed_port(5672)}/%2F"),
            via_containers=True,
        )

    def stop(self) -> None:
        for container in (self._postgres, self._redis, self._rabbit):
            container.stop()


def find_backends() -> tuple[Backends, _Containers | None]:
    if _docker_engine_reachable():
        containers = _Containers()
        return containers.backends(), containers
    return _local(), None
