"""The one call helper and the one channel per service: how a failure is mapped, and that clients share channels."""

from __future__ import annotations

from collections.abc import Callable

import grpc
import pytest
from prometheus_client import REGISTRY

from tend_common.service_auth import channel_to
from tend_portal import channels as channels_module
from tend_portal.channels import ServiceChannels, close_channels
from tend_portal.grpc_calls import (
    InvalidArgument,
    NotFound,
    ServiceCallError,
    Unavailable,
    call,
    failure,
)
from tend_portal.settings import Settings
from tend_portal.web import create_app

_DETAILS = "Canary details that must not reach a page"


class _Failed(grpc.RpcError):  # type: ignore[misc]  # grpc ships no type hints
    """A failed call as grpc raises it: a status code and details."""

    def __init__(self, code: grpc.StatusCode, details: str = _DETAILS) -> None:
        super().__init__()
        self._code = code
        self._details = details

    def code(self) -> grpc.StatusCode:
        return self._code

    def details(self) -> str:
        return self._details


class _Special(ServiceCallError):
    message = "A client's own message."
    http_status = 409


def _failing(error: grpc.RpcError) -> Callable[..., object]:
    def stub_method(_request: object, *, timeout: float) -> object:
        assert timeout == 1.5
        raise error

    return stub_method


def _failures(method: str, code: str) -> float:
    labels = {"method": method, "code": code}
    return REGISTRY.get_sample_value("tend_portal_service_call_failures_total", labels) or 0.0


def test_a_call_returns_the_response_and_passes_the_deadline() -> None:
    def stub_method(request: str, *, timeout: float) -> str:
        return f"{request} within {timeout}"

    assert call("Echo", stub_method, "hello", 1.5) == "hello within 1.5"


def test_a_failure_is_mapped_by_code_counted_and_never_carries_the_details() -> None:
    before = _failures("Lookup", "NOT_FOUND")

    with pytest.raises(NotFound) as raised:
        call("Lookup", _failing(_Failed(grpc.StatusCode.NOT_FOUND)), "request", 1.5)

    assert raised.value.code_name == "NOT_FOUND"
    assert raised.value.method == "Lookup"
    assert _DETAILS not in str(raised.value)
    assert _DETAILS not in raised.value.message
    assert _failures("Lookup", "NOT_FOUND") == before + 1


def test_a_client_may_name_its_own_error_for_a_code_and_others_keep_the_usual_one() -> None:
    errors = {grpc.StatusCode.ALREADY_EXISTS: _Special}

    with pytest.raises(_Special) as raised:
        call("Send", _failing(_Failed(grpc.StatusCode.ALREADY_EXISTS)), "request", 1.5, errors=errors)
    assert raised.value.code_name == "ALREADY_EXISTS"
    with pytest.raises(Unavailable):
        call("Send", _failing(_Failed(grpc.StatusCode.DEADLINE_EXCEEDED)), "request", 1.5, errors=errors)


def test_details_are_read_only_where_a_client_shows_them_and_otherwise_mapped_as_usual() -> None:
    def shown(method: str, details: str) -> Exception | None:
        return ValueError(f"{method}: {details}") if details.startswith("shown: ") else None

    details_shown = {grpc.StatusCode.INVALID_ARGUMENT: shown}

    read = failure("Check", _Failed(grpc.StatusCode.INVALID_ARGUMENT, "shown: line 2"), details_shown=details_shown)
    assert isinstance(read, ValueError)
    assert str(read) == "Check: shown: line 2"
    usual = failure("Check", _Failed(grpc.StatusCode.INVALID_ARGUMENT), details_shown=details_shown)
    assert type(usual) is InvalidArgument
    other_code = failure("Check", _Failed(grpc.StatusCode.INTERNAL, "shown: x"), details_shown=details_shown)
    assert type(other_code) is ServiceCallError


def test_each_service_has_one_channel_opened_once_until_closed(settings: Settings) -> None:
    channels = ServiceChannels(settings)

    first = channels.identity
    assert channels.identity is first
    assert channels.checkin is not first
    channels.close()
    assert channels.identity is not first
    channels.close()


def test_the_app_opens_one_channel_per_service_for_all_its_clients(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    opened: list[str] = []

    def recording_channel_to(target: str, audience: str, caller: str, service_key: str) -> grpc.Channel:
        opened.append(audience)
        return channel_to(target, audience, caller, service_key)

    monkeypatch.setattr(channels_module, "channel_to", recording_channel_to)

    app = create_app(settings)

    assert sorted(opened) == ["audit", "checkin", "identity", "indicators", "notify"]
    close_channels(app)
