"""Graceful shutdown: on SIGTERM or SIGINT, stop taking work, finish what is in flight, then exit."""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Callable
from types import FrameType

log = logging.getLogger(__name__)


class Shutdown:
    """Collects stop callbacks and runs them, in reverse order of registration, when a signal arrives.

    Components register in start-up order, so the last started (an intake such as a gRPC server or a consumer)
    stops first and the things it depends on (database pools, publishers) stop last.
    """

    def __init__(self) -> None:
        self._event = threading.Event()
        self._callbacks: list[tuple[str, Callable[[], None]]] = []

    def on_stop(self, name: str, callback: Callable[[], None]) -> None:
        self._callbacks.append((name, callback))

    def install_signal_handlers(self) -> None:
        signal.signal(signal.SIGTERM, self._handle)
        signal.signal(signal.SIGINT, self._handle)

    def _handle(self, signum: int, _frame: FrameType | None) -> None:
        log.info("shutdown requested", extra={"fields": {"signal": signal.Signals(signum).name}})
        self._event.set()

    def request(self) -> None:
        self._event.set()

    @property
    def requested(self) -> bool:
        return self._event.is_set()

    def wait(self, timeout: float | None = None) -> bool:
        return self._event.wait(timeout)

    def run_until_signalled(self) -> None:
        """Blocks until a signal, then runs every stop callback; a failing callback does not stop the others."""
        while not self._event.wait(1.0):
            pass
        for name, callback in reversed(self._callbacks):
            try:
                callback()
                log.info("stopped", extra={"fields": {"component": name}})
            except Exception:
                log.exception("stop failed", extra={"fields": {"component": name}})
