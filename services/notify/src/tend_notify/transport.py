"""Handing a message to a mail server (or, in test mode, to a local mailbox), and knowing what happened.

The one moment that matters is the end of the DATA command: until the final "." is sent, the server cannot have
accepted the message, so any failure is safe to retry; once it is sent and before the answer arrives, the message may
or may not have been accepted. The transport calls `at_point_of_no_return` just before that moment, so the caller can
record it durably, and reports the outcome in those terms.
"""

from __future__ import annotations

import contextlib
import os
import re
import smtplib
import ssl
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from tend_notify.settings import Settings

SENT = "sent"
DEFERRED = "deferred"  # refused for now, or interrupted before the server could accept: safe to retry
BOUNCED = "bounced"  # the recipient was refused for good
FAILED = "failed"  # refused for good for another reason
UNCERTAIN = "uncertain"  # handed over, answer unknown

_ENHANCED = re.compile(rb"^([245]\.\d{1,3}\.\d{1,3})\b")
# Refusals that say the session is not set up as the server wants (TLS or sign-in required, credentials refused):
# the configuration's fault, not the message's, so they are retried until fixed rather than failed at once.
_SESSION_REFUSALS = frozenset({530, 534, 535, 538})


@dataclass(frozen=True)
class OutgoingMail:
    """A message ready for the wire: envelope addresses and the RFC 5322 bytes with CRLF line endings."""

    message_id: str
    mail_from: str
    rcpt_to: str
    data: bytes


@dataclass(frozen=True)
class SendOutcome:
    """What happened, without the server's free text (which may quote the address)."""

    result: str
    smtp_code: int | None = None
    enhanced_code: str = ""
    reason: str = ""


def _reply_outcome(result: str, code: int, reply: bytes, stage: str) -> SendOutcome:
    match = _ENHANCED.match(reply or b"")
    enhanced = match.group(1).decode() if match else ""
    detail = f"{code} {enhanced}".strip()
    return SendOutcome(result, code, enhanced, f"the mail server answered {detail} to {stage}")


class MailTransport(Protocol):
    """Sends one message at a time; one instance per sending thread."""

    def send(self, mail: OutgoingMail, at_point_of_no_return: Callable[[], None]) -> SendOutcome: ...

    def close(self) -> None: ...


def _dot_stuffed(data: bytes) -> bytes:
    stuffed = re.sub(rb"(?m)^\.", b"..", data)
    return stuffed if stuffed.endswith(b"\r\n") else stuffed + b"\r\n"


class SmtpTransport:
    """One reusable SMTP connection: opened on first use, kept for the next message, closed when idle too long."""

    def __init__(self, settings: Settings, clock: Callable[[], float] = time.monotonic) -> None:
        self._settings = settings
        self._clock = clock
        self._smtp: smtplib.SMTP | None = None
        self._last_used = 0.0

    def _tls_context(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=self._settings.smtp_ca_file or None)

    def _connect(self) -> smtplib.SMTP:
        s = self._settings
        if s.smtp_security == "tls":
            smtp: smtplib.SMTP = smtplib.SMTP_SSL(
                s.smtp_host, s.smtp_port, timeout=s.smtp_timeout_seconds, context=self._tls_context()
            )
        else:
            smtp = smtplib.SMTP(s.smtp_host, s.smtp_port, timeout=s.smtp_timeout_seconds)
        try:
            smtp.ehlo()
            if s.smtp_security == "starttls":
                # starttls() refuses when the server does not offer it, so nothing is ever sent in the clear.
                smtp.starttls(context=self._tls_context())
                smtp.ehlo()
            if s.smtp_username:
                smtp.login(s.smtp_username, s.smtp_password)
        except BaseException:
            with contextlib.suppress(OSError):
                smtp.close()
            raise
        return smtp

    def _connection(self) -> tuple[smtplib.SMTP, bool]:
        """The connection to use and whether it was reused (a reused one may have been closed by the server)."""
        if self._smtp is not None and self._clock() - self._last_used > self._settings.smtp_idle_seconds:
            self.close()
        if self._smtp is None:
            self._smtp = self._connect()
            return self._smtp, False
        return self._smtp, True

    def send(self, mail: OutgoingMail, at_point_of_no_return: Callable[[], None]) -> SendOutcome:
        try:
            smtp, reused = self._connection()
        except OSError as exc:  # smtplib's errors are OSErrors too
            return self._unreachable(exc)
        try:
            code, reply = _mail_from(smtp, mail)
        except OSError as exc:
            self._drop()
            if not reused:
                return SendOutcome(DEFERRED, reason=f"the connection failed before sending ({type(exc).__name__})")
            # The server had closed the idle connection: nothing was sent, so try once on a fresh one.
            return self._send_fresh(mail, at_point_of_no_return)
        if reused and code == 421:
            # The server is closing the idle connection and said so: the same, politely.
            self._drop()
            return self._send_fresh(mail, at_point_of_no_return)
        return self._transaction(smtp, mail, code, reply, at_point_of_no_return)

    def _send_fresh(self, mail: OutgoingMail, at_point_of_no_return: Callable[[], None]) -> SendOutcome:
        try:
            smtp, _reused = self._connection()
            code, reply = _mail_from(smtp, mail)
        except OSError as exc:
            return self._unreachable(exc)
        return self._transaction(smtp, mail, code, reply, at_point_of_no_return)

    def _unreachable(self, exc: OSError) -> SendOutcome:
        """No session: the server is down, refused the greeting, TLS or sign-in failed. Nothing was sent, and a
        session refused now (even with a 5xx, for a login) is the server's or the configuration's state, not the
        message's: it is retried, and fails only when its attempts are used up."""
        self._drop()
        if isinstance(exc, smtplib.SMTPResponseException):
            return _reply_outcome(DEFERRED, exc.smtp_code, _as_bytes(exc.smtp_error), "the session")
        return SendOutcome(DEFERRED, reason=f"the mail server could not be reached ({type(exc).__name__})")

    def _transaction(
        self, smtp: smtplib.SMTP, mail: OutgoingMail, code: int, reply: bytes, at_point_of_no_return: Callable[[], None]
    ) -> SendOutcome:
        try:
            if code != 250:
                return self._refused(smtp, code, reply, "the sender", FAILED)
            smtp.putcmd("rcpt", f"TO:<{mail.rcpt_to}>")
            code, reply = smtp.getreply()
            if code not in (250, 251):
                return self._refused(smtp, code, reply, "the recipient", BOUNCED)
            code, reply = smtp.docmd("DATA")
            if code != 354:
                return self._refused(smtp, code, reply, "DATA", FAILED)
            smtp.send(_dot_stuffed(mail.data))
        except OSError as exc:
            self._drop()
            return SendOutcome(
                DEFERRED, reason=f"the connection failed before the message was complete ({type(exc).__name__})"
            )
        try:
            at_point_of_no_return()
        except BaseException:
            # Not recorded, so not sent: dropping the connection makes the server discard the incomplete message.
            self._drop()
            raise
        try:
            smtp.send(b".\r\n")
            code, reply = smtp.getreply()
        except OSError as exc:
            self._drop()
            return SendOutcome(UNCERTAIN, reason=f"no answer after the message was handed over ({type(exc).__name__})")
        self._last_used = self._clock()
        if code == 250:
            return SendOutcome(SENT, 250, _enhanced(reply))
        return self._refused(smtp, code, reply, "the message", FAILED)

    def _refused(self, smtp: smtplib.SMTP, code: int, reply: bytes, stage: str, permanent: str) -> SendOutcome:
        temporary = 400 <= code < 500 or code in _SESSION_REFUSALS
        outcome = _reply_outcome(DEFERRED if temporary else permanent, code, reply, stage)
        if code == 421 or code < 200:
            # 421: the server is closing the connection; anything else unexpected: start afresh next time.
            self._drop()
            return outcome
        try:
            smtp.rset()
            self._last_used = self._clock()
        except OSError:
            self._drop()
        return outcome

    def close(self) -> None:
        """Ends a connection in good order (QUIT), as after an idle spell."""
        if self._smtp is not None:
            with contextlib.suppress(OSError):
                self._smtp.quit()
            self._drop()

    def _drop(self) -> None:
        """Drops a connection whose state is unknown or broken, without a word: a server discards an unfinished
        message when the connection goes."""
        if self._smtp is not None:
            with contextlib.suppress(OSError):
                self._smtp.close()
            self._smtp = None


def _mail_from(smtp: smtplib.SMTP, mail: OutgoingMail) -> tuple[int, bytes]:
    """MAIL FROM, written directly: the addresses of an OutgoingMail are checked when it is composed (no spaces,
    angle brackets or line breaks), and smtplib's own quoting parses each address again at some cost."""
    smtp.putcmd("mail", f"FROM:<{mail.mail_from}>")
    return smtp.getreply()


def _as_bytes(value: bytes | str) -> bytes:
    return value if isinstance(value, bytes) else value.encode(errors="replace")


def _enhanced(reply: bytes) -> str:
    match = _ENHANCED.match(reply or b"")
    return match.group(1).decode() if match else ""


class MailboxTransport:
    """Test mode: each message becomes `<mailbox_dir>/<Message-ID>.eml`. Writing the same message again replaces
    the file, so a mailbox, like a careful server, never holds two copies of one Message-ID."""

    def __init__(self, directory: str | Path) -> None:
        self._directory = Path(directory)
        self._directory.mkdir(parents=True, exist_ok=True)

    def send(self, mail: OutgoingMail, at_point_of_no_return: Callable[[], None]) -> SendOutcome:
        name = re.sub(r"[^A-Za-z0-9._-]", "_", mail.message_id.strip("<>")) + ".eml"
        handle, temporary = tempfile.mkstemp(dir=self._directory, prefix=".incoming-", suffix=".tmp")
        try:
            with os.fdopen(handle, "wb") as file:
                file.write(mail.data)
            at_point_of_no_return()
            os.replace(temporary, self._directory / name)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(temporary)
            raise
        return SendOutcome(SENT, reason="written to the local mailbox")

    def close(self) -> None:
        pass


class InMemoryTransport:
    """Keeps messages in a list; for unit tests. `outcomes` (consumed in order) decides what each send reports."""

    def __init__(self) -> None:
        self.sent: list[OutgoingMail] = []
        self.outcomes: list[SendOutcome] = []

    def send(self, mail: OutgoingMail, at_point_of_no_return: Callable[[], None]) -> SendOutcome:
        outcome = self.outcomes.pop(0) if self.outcomes else SendOutcome(SENT, 250)
        if outcome.result in (SENT, UNCERTAIN):
            at_point_of_no_return()
        if outcome.result == SENT:
            self.sent.append(mail)
        return outcome

    def close(self) -> None:
        pass


def transport_factory(settings: Settings) -> Callable[[], MailTransport]:
    """Makes one transport per sending thread, as the delivery mode says."""
    if settings.delivery_mode == "mailbox":
        return lambda: MailboxTransport(settings.mailbox_dir)
    return lambda: SmtpTransport(settings)
