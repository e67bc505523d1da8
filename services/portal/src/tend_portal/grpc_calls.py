"""How every client of the portal makes a gRPC call: with a deadline, and with a failure turned into an error whose
message is written here.

A failure becomes a ServiceCallError chosen by its status code, never carrying the remote status details: those may
hold personal data, and the portal must not echo it. A client may name other errors for some codes (`errors`), and,
where showing the details is safe and on purpose, read them (`details_shown`); both are small mappings passed to
`call`, so each client states its special cases in one place.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from prometheus_client import Counter

log = logging.getLogger(__name__)

# Readiness probes must answer quickly, whatever the timeout of ordinary calls.
_HEALTH_TIMEOUT_SECONDS = 2.0

SERVICE_CALL_FAILURES = Counter(
    "tend_portal_service_call_failures_total",
    "Calls to other Tend services that failed, by method and status",
    ["method", "code"],
)

ResponseT = TypeVar("ResponseT")


class ServiceCallError(Exception):
    """A call to another service failed. `message` is safe to show; `http_status` is the page's status."""

    message = "Something went wrong on our side. Please try again in a moment."
    http_status = 502

    def __init__(self, method: str, code_name: str) -> None:
        super().__init__(f"{method} failed: {code_name}")
        self.method = method
        self.code_name = code_name


class Unauthenticated(ServiceCallError):
    message = "You are not signed in, or your session has ended. Please sign in again."
    http_status = 401


class NotFound(ServiceCallError):
    message = "We could not find that. It may have ended or never existed."
    http_status = 404


class PermissionDenied(ServiceCallError):
    message = "You do not have permission to do that."
    http_status = 403


class InvalidArgument(ServiceCallError):
    message = "Some of the details given were not valid. Check them and try again."
    http_status = 400


class Unavailable(ServiceCallError):
    message = "A service Tend relies on is not answering just now. Please try again in a moment."
    http_status = 503


# What a failed call becomes unless the client names another error for its code.
_ERROR_BY_CODE: dict[Any, type[ServiceCallError]] = {
    grpc.StatusCode.UNAUTHENTICATED: Unauthenticated,
    grpc.StatusCode.NOT_FOUND: NotFound,
    grpc.StatusCode.PERMISSION_DENIED: PermissionDenied,
    grpc.StatusCode.INVALID_ARGUMENT: InvalidArgument,
    grpc.StatusCode.UNAVAILABLE: Unavailable,
    grpc.StatusCode.DEADLINE_EXCEEDED: Unavailable,
}

# A client's own error for a status code, made from (method, code name).
ErrorsByCode = Mapping[Any, Callable[[str, str], Exception]]
# For a status code whose details a client deliberately shows: (method, details) to the error to raise, or None
# when the details are not the kind it shows (the failure is then mapped as usual).
DetailsShown = Mapping[Any, Callable[[str, str], Exception | None]]


def failure(
    method: str, error: grpc.RpcError, errors: ErrorsByCode | None = None, details_shown: DetailsShown | None = None
) -> Exception:
    """The error to raise for a failed call, counted and logged by method and status code."""
    code = error.code() if hasattr(error, "code") else grpc.StatusCode.UNKNOWN
    code_name = getattr(code, "name", "UNKNOWN")
    SERVICE_CALL_FAILURES.labels(method=method, code=code_name).inc()
    # The status details are deliberately not logged: a remote service may have put a value in them.
    log.info("service call failed", extra={"fields": {"method": method, "code": code_name}})
    read_details = (details_shown or {}).get(code)
    if read_details is not None:
        shown = read_details(method, (error.details() if hasattr(error, "details") else "") or "")
        if shown is not None:
            return shown
    make_error = (errors or {}).get(code) or _ERROR_BY_CODE.get(code, ServiceCallError)
    return make_error(method, code_name)


def call(
    method: str,
    stub_method: Callable[..., ResponseT],
    request: object,
    timeout: float,
    *,
    errors: ErrorsByCode | None = None,
    details_shown: DetailsShown | None = None,
) -> ResponseT:
    """Makes one unary call with a deadline; a failure is raised as the error `failure` chooses."""
    try:
        return stub_method(request, timeout=timeout)
    except grpc.RpcError as exc:
        raise failure(method, exc, errors, details_shown) from None


def check_health(channel: grpc.Channel, timeout: float) -> None:
    """Raises unless the service behind the channel answers SERVING within the (short) probe deadline."""
    request = health_pb2.HealthCheckRequest(service="")
    response = health_pb2_grpc.HealthStub(channel).Check(request, timeout=min(timeout, _HEALTH_TIMEOUT_SECONDS))
    if response.status != health_pb2.HealthCheckResponse.SERVING:
        raise RuntimeError("not serving")
