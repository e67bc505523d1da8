"""A real SMTP server for notify's tests (aiosmtpd on a free port), whose behaviour a test controls: it can hold a
transaction at the recipient or at the end of the data until told, answer 4xx or 5xx, and run a callback the moment
it has accepted a message (before its 250 reaches the client)."""

from __future__ import annotations

import asyncio
import email
import email.policy
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from email.message import EmailMessage
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session

from tend_testing.processes import free_port


@dataclass(frozen=True)
class Received:
    mail_from: str
    rcpt_tos: tuple[str, ...]
    data: bytes
    # The client's address and port: one per connection, so reused connections show as repeats.
    peer: str

    def parsed(self) -> EmailMessage:
        message = email.message_from_bytes(self.data, policy=email.policy.default)
        assert isinstance(message, EmailMessage)
        return message

    @property
    def message_id(self) -> str:
        return str(self.parsed()["Message-ID"])


@dataclass
class Behaviour:
    """What the server does; change it while the server runs."""

    # Replies to the end of DATA, used in order before accepting (for example ["451 4.7.1 Try again later"]).
    data_replies: list[str] = field(default_factory=list)
    # Reply to every RCPT (for example "550 5.1.1 No such user"); None accepts.
    rcpt_reply: str | None = None
    # While set to an unset Event, a transaction waits until the event is set: at RCPT (before any data), at the end
    # of DATA (the whole message received, not yet accepted; a client that goes away meanwhile leaves nothing), or
    # after accepting it (stored, the 250 not yet sent: the answer a client may never see).
    hold_at_rcpt: threading.Event | None = None
    hold_at_data: threading.Event | None = None
    hold_after_accept: threading.Event | None = None
    # Called after a message is stored and before the 250 is sent.
    on_accept: Callable[[Received], None] | None = None


class _Handler:
    def __init__(self, server: RecordingSmtpServer) -> None:
        self._server = server

    async def _wait(self, event: threading.Event) -> None:
        while not event.is_set():
            await asyncio.sleep(0.02)

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, rcpt_options: list[str]
    ) -> str:
        behaviour = self._server.behaviour
        self._server.rcpt_seen.set()
        if behaviour.hold_at_rcpt is not None:
            await self._wait(behaviour.hold_at_rcpt)
        if behaviour.rcpt_reply is not None:
            return behaviour.rcpt_reply
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        behaviour = self._server.behaviour
        self._server.data_seen.set()
        if behaviour.hold_at_data is not None:
            await self._wait(behaviour.hold_at_data)
        with self._server.lock:
            self._server.data_commands += 1
            if behaviour.data_replies:
                return behaviour.data_replies.pop(0)
            content = envelope.original_content or envelope.content or b""
            received = Received(
                str(envelope.mail_from),
                tuple(envelope.rcpt_tos),
                content if isinstance(content, bytes) else content.encode(),
                str(session.peer),
            )
            self._server.messages.append(received)
        if behaviour.on_accept is not None:
            behaviour.on_accept(received)
        if behaviour.hold_after_accept is not None:
            await self._wait(behaviour.hold_after_accept)
        return "250 2.0.0 OK: queued"


class RecordingSmtpServer:
    """Keeps every message it accepted, in order."""

    def __init__(self, **smtp_options: Any) -> None:
        self.port = free_port()
        self.behaviour = Behaviour()
        self.messages: list[Received] = []
        self.data_commands = 0
        self.lock = threading.Lock()
        self.rcpt_seen = threading.Event()
        self.data_seen = threading.Event()
        self._controller = Controller(
            _Handler(self), hostname="127.0.0.1", port=self.port, server_hostname="localhost", **smtp_options
        )

    def start(self) -> RecordingSmtpServer:
        self._controller.start()
        return self

    def stop(self) -> None:
        self._controller.stop()

    def count(self) -> int:
        with self.lock:
            return len(self.messages)

    def wait_for(self, count: int, timeout: float = 30.0) -> list[Received]:
        """Waits until at least `count` messages arrived; returns them all."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                if len(self.messages) >= count:
                    return list(self.messages)
            time.sleep(0.02)
        raise AssertionError(f"{count} messages expected, {self.count()} arrived")

    def by_message_id(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        with self.lock:
            for message in self.messages:
                counts[message.message_id] = counts.get(message.message_id, 0) + 1
        return counts
