"""`tend-notify smtp-sink`: a local SMTP server that keeps what it receives, for test mode and demonstrations.

Every message is accepted and written as `<directory>/<Message-ID>.eml`; a second copy of one Message-ID is kept
beside the first as `<Message-ID>.2.eml`, so a duplicate is there to see. Without a directory messages are only
counted. Nothing is relayed anywhere.
"""

from __future__ import annotations

import logging
import re
import signal
import threading
from pathlib import Path

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session

log = logging.getLogger(__name__)

_MESSAGE_ID = re.compile(rb"^Message-ID:\s*<([^>\r\n]+)>", re.IGNORECASE | re.MULTILINE)


class SinkHandler:
    def __init__(self, directory: Path | None) -> None:
        self._directory = directory
        self.received = 0
        if directory is not None:
            directory.mkdir(parents=True, exist_ok=True)

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        # Handlers run one at a time on the server's event loop, so the counter and the names need no lock.
        self.received += 1
        if self._directory is not None:
            content = envelope.original_content or b""
            found = _MESSAGE_ID.search(content)
            name = found.group(1).decode(errors="replace") if found else f"no-message-id-{self.received}"
            stem = re.sub(r"[^A-Za-z0-9._-]", "_", name)
            temporary = self._directory / f".incoming-{self.received}.tmp"
            temporary.write_bytes(content)
            copy = 1
            while (path := self._directory / (stem + (f".{copy}" if copy > 1 else "") + ".eml")).exists():
                copy += 1
            temporary.rename(path)  # whole files only: a reader never sees half a message
        return "250 2.0.0 OK: kept"


def run_sink(host: str, port: int, directory: Path | None) -> None:
    """Serves until SIGTERM or SIGINT."""
    handler = SinkHandler(directory)
    controller = Controller(handler, hostname=host, port=port, server_hostname="localhost")
    controller.start()
    log.info("smtp sink listening", extra={"fields": {"port": port}})
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    stop.wait()
    controller.stop()
    log.info("smtp sink stopped", extra={"fields": {"received": handler.received}})
