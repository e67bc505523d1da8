"""Container health check for docker compose: exits 0 only when the server in this container answers.

`healthcheck.py grpc PORT` asks the standard gRPC health service (overall status, service "") for SERVING;
`healthcheck.py http PORT PATH` expects 200 from a web process's route (/readyz or /healthz). Both ask 127.0.0.1
only. Kubernetes does not need this: it has native gRPC and HTTP probes.
"""

from __future__ import annotations

import sys
import urllib.error
import urllib.request

TIMEOUT_SECONDS = 3.0


def grpc_serving(port: int) -> bool:
    import grpc
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        try:
            response = health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(service=""), timeout=TIMEOUT_SECONDS
            )
        except grpc.RpcError:
            return False
    return bool(response.status == health_pb2.HealthCheckResponse.SERVING)


def http_ok(port: int, path: str) -> bool:
    url = f"http://127.0.0.1:{port}/{path.lstrip('/')}"
    try:
        with urllib.request.urlopen(url, timeout=TIMEOUT_SECONDS) as response:
            return bool(response.status == 200)
    except (urllib.error.URLError, OSError):
        return False


def main(argv: list[str]) -> int:
    match argv:
        case ["grpc", port] if port.isdigit():
            healthy = grpc_serving(int(port))
        case ["http", port, path] if port.isdigit():
            healthy = http_ok(int(port), path)
        case _:
            print("usage: healthcheck.py grpc PORT | healthcheck.py http PORT PATH", file=sys.stderr)
            return 2
    if not healthy:
        print("unhealthy", file=sys.stderr)
    return 0 if healthy else 1


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
