"""Starts a gRPC server with the standard health and reflection services, and stops it gracefully."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from concurrent import futures

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

log = logging.getLogger(__name__)


class GrpcServer:
    """A started gRPC server whose health reports SERVING for each named service until `stop`."""

    def __init__(
        self, server: grpc.Server, health_servicer: health.HealthServicer, port: int, service_names: Sequence[str]
    ) -> None:
        self._server = server
        self._health = health_servicer
        self.port = port
        self._service_names = service_names

    def stop(self, grace_seconds: float = 10.0) -> None:
        """Reports NOT_SERVING (so load balancers drain), refuses new calls, and lets calls in flight finish."""
        for name in ("", *self._service_names):
            self._health.set(name, health_pb2.HealthCheckResponse.NOT_SERVING)
        self._server.stop(grace_seconds).wait()


def start_grpc_server(
    register: Callable[[grpc.Server], None],
    service_names: Sequence[str],
    port: int,
    host: str = "127.0.0.1",
    max_workers: int = 16,
    interceptors: Sequence[grpc.ServerInterceptor] = (),
) -> GrpcServer:
    """Builds, starts and returns a server; `register` adds the service's own servicers.

    Port 0 picks a free port, reported as `GrpcServer.port`.
    """
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=max_workers), interceptors=list(interceptors))
    register(server)
    health_servicer = health.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    reflection.enable_server_reflection(
        (*service_names, health_pb2.DESCRIPTOR.services_by_name["Health"].full_name, reflection.SERVICE_NAME), server
    )
    bound = server.add_insecure_port(f"{host}:{port}")
    if bound == 0:
        raise RuntimeError(f"could not bind gRPC port {host}:{port}")
    server.start()
    for name in ("", *service_names):
        health_servicer.set(name, health_pb2.HealthCheckResponse.SERVING)
    log.info("grpc server started", extra={"fields": {"port": bound}})
    return GrpcServer(server, health_servicer, bound, service_names)


def wait_until_serving(target: str, timeout: float = 10.0) -> None:
    """Blocks until the server at `target` answers its health check with SERVING."""
    with grpc.insecure_channel(target) as channel:
        grpc.channel_ready_future(channel).result(timeout=timeout)
        stub = health_pb2_grpc.HealthStub(channel)
        response = stub.Check(health_pb2.HealthCheckRequest(service=""), timeout=timeout)
        if response.status != health_pb2.HealthCheckResponse.SERVING:
            raise RuntimeError(f"{target} is not serving")
