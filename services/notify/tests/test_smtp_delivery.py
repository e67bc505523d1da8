"""Delivery to a real SMTP server (aiosmtpd on a free port): the message as received (content, headers, the request
id and Message-ID, the text and HTML parts), reused connections, how each kind of answer is classified, STARTTLS
with sign-in, and the local mailbox of test mode."""

from __future__ import annotations

import datetime as dt
import ipaddress
import select
import socket
import ssl
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path

import pytest
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from services.notify.tests.conftest import Notify
from services.notify.tests.smtp_server import Behaviour, RecordingSmtpServer
from tend_notify.settings import Settings
from tend_notify.transport import (
    BOUNCED,
    DEFERRED,
    FAILED,
    SENT,
    UNCERTAIN,
    MailboxTransport,
    OutgoingMail,
    SmtpTransport,
)


def _smtp_settings(server: RecordingSmtpServer, **options: object) -> Settings:
    values: dict[str, object] = {"smtp_host": "127.0.0.1", "smtp_port": server.port, "smtp_timeout_seconds": 5}
    values.update(options)
    return Settings(**values)  # type: ignore[arg-type]


def _mail(number: int = 0, data: bytes | None = None) -> OutgoingMail:
    body = data or (
        b"Message-ID: <m" + str(number).encode() + b"@example.ac.uk>\r\nSubject: test\r\n\r\nHello\r\n.leading dot\r\n"
    )
    return OutgoingMail(f"<m{number}@example.ac.uk>", "tend@example.ac.uk", "sam@students.example.ac.uk", body)


def _nothing() -> None:
    pass


def test_an_enquiry_as_the_student_receives_it(notify: Notify, smtp_server: RecordingSmtpServer) -> None:
    transport = SmtpTransport(replace(notify.settings, smtp_port=smtp_server.port, smtp_timeout_seconds=5))
    request = notify.request(case_id="case-42")
    assert notify.dispatcher.dispatch_once(transport)
    transport.close()
    [received] = smtp_server.wait_for(1)
    assert received.mail_from == "tend@example.ac.uk"
    assert received.rcpt_tos == ("sam.student@students.example.ac.uk",)
    message = received.parsed()
    assert message["Message-ID"] == f"<{request.request_id}@example.ac.uk>"
    assert message["X-Tend-Request-Id"] == str(request.request_id)
    assert message["Subject"] == "How are things going, Sam?"
    assert message["From"] == '"Dr Alex Example (the University)" <tend@example.ac.uk>'
    assert message["To"] == "Sam <sam.student@students.example.ac.uk>"
    assert message["Reply-To"] == '"Dr Alex Example (the University)" <alex.example@example.ac.uk>'
    assert message["Date"] is not None
    assert message.get_content_type() == "multipart/alternative"
    text, html = message.get_body(("plain",)), message.get_body(("html",))
    assert text is not None
    assert html is not None
    assert text.get_content().replace("\r\n", "\n") == (
        "Dear Sam,\n\nHow are you? I can help.\n\nhttps://www.example.ac.uk/support\n\nDr Alex Example\n"
    )
    html_text = html.get_content()
    assert "<p>Dear Sam,</p>" in html_text
    assert '<a href="https://www.example.ac.uk/support">' in html_text
    assert notify.row(request.request_id)["status"] == "sent"
    # Nothing in the message passes on indicator data: the case id is not even in it.
    assert b"case-42" not in received.data
    assert b"flag" not in received.data.lower()


def test_one_connection_carries_many_messages(smtp_server: RecordingSmtpServer) -> None:
    transport = SmtpTransport(_smtp_settings(smtp_server))
    outcomes = [transport.send(_mail(n), _nothing).result for n in range(5)]
    transport.close()
    assert outcomes == [SENT] * 5
    received = smtp_server.wait_for(5)
    assert len({m.peer for m in received}) == 1
    assert b"\r\n.leading dot\r\n" in received[0].data  # dot-stuffing undone by the server: the text arrives intact


def test_a_connection_closed_by_the_server_while_idle_is_replaced() -> None:
    server = RecordingSmtpServer(timeout=0.3).start()
    try:
        transport = SmtpTransport(_smtp_settings(server))
        assert transport.send(_mail(1), _nothing).result == SENT
        assert transport._smtp is not None
        assert transport._smtp.sock is not None
        connection = transport._smtp.sock
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:  # until the server's idle timeout has closed it
            readable, _, _ = select.select([connection], [], [], 0.1)
            if readable and connection.recv(1, socket.MSG_PEEK) == b"":
                break
        assert transport.send(_mail(2), _nothing).result == SENT
        transport.close()
        assert len({m.peer for m in server.wait_for(2)}) == 2
    finally:
        server.stop()


@pytest.mark.parametrize(
    ("configure", "result", "code"),
    [
        (lambda b: b.data_replies.append("451 4.7.1 Try again later"), DEFERRED, 451),
        (lambda b: b.data_replies.append("554 5.6.0 Message refused"), FAILED, 554),
        (lambda b: setattr(b, "rcpt_reply", "550 5.1.1 <sam@students.example.ac.uk> No such user"), BOUNCED, 550),
        (lambda b: setattr(b, "rcpt_reply", "452 4.2.2 Mailbox full"), DEFERRED, 452),
    ],
)
def test_answers_are_classified_without_quoting_the_server(
    smtp_server: RecordingSmtpServer, configure: Callable[..., None], result: str, code: int
) -> None:
    configure(smtp_server.behaviour)
    transport = SmtpTransport(_smtp_settings(smtp_server))
    try:
        outcome = transport.send(_mail(), _nothing)
        assert (outcome.result, outcome.smtp_code) == (result, code)
        assert "sam@" not in outcome.reason
        assert "No such user" not in outcome.reason
        # The connection is reset and reused for the next message.
        smtp_server.behaviour = Behaviour()
        assert transport.send(_mail(2), _nothing).result == SENT
        assert len({m.peer for m in smtp_server.wait_for(1)}) == 1
    finally:
        transport.close()


def test_an_unreachable_server_is_a_temporary_failure() -> None:
    from tend_testing.processes import free_port

    transport = SmtpTransport(Settings(smtp_host="127.0.0.1", smtp_port=free_port(), smtp_timeout_seconds=2))
    outcome = transport.send(_mail(), _nothing)
    assert outcome.result == DEFERRED
    assert "could not be reached" in outcome.reason


def test_no_answer_after_the_hand_over_is_uncertain(smtp_server: RecordingSmtpServer) -> None:
    # The server accepts the message but its answer never arrives: exactly why such a message must not be sent again
    # without a person deciding.
    release = threading.Event()
    smtp_server.behaviour.hold_after_accept = release
    transport = SmtpTransport(_smtp_settings(smtp_server, smtp_timeout_seconds=0.5))
    marked: list[bool] = []
    outcome = transport.send(_mail(), lambda: marked.append(True))
    release.set()
    assert (outcome.result, marked) == (UNCERTAIN, [True])
    assert len(smtp_server.wait_for(1)) == 1


def test_a_failure_to_record_the_point_of_no_return_keeps_the_message_back(smtp_server: RecordingSmtpServer) -> None:
    transport = SmtpTransport(_smtp_settings(smtp_server))

    def cannot_record() -> None:
        raise RuntimeError("database away")

    with pytest.raises(RuntimeError):
        transport.send(_mail(), cannot_record)
    assert transport.send(_mail(2), _nothing).result == SENT
    received = smtp_server.wait_for(1)
    assert [m.message_id for m in received] == ["<m2@example.ac.uk>"]


def _certificate(tmp_path: Path) -> tuple[Path, ssl.SSLContext]:
    """A CA and a server certificate for 127.0.0.1; returns the CA file and the server's TLS context."""
    now = dt.datetime.now(dt.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Test CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(hours=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(hours=1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False)
        .sign(ca_key, hashes.SHA256())
    )
    ca_file, cert_file, key_file = tmp_path / "ca.pem", tmp_path / "cert.pem", tmp_path / "key.pem"
    ca_file.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert_file, key_file)
    return ca_file, context


@pytest.fixture
def tls_server(tmp_path: Path) -> Iterator[tuple[RecordingSmtpServer, Path]]:
    ca_file, context = _certificate(tmp_path)

    def authenticator(server: SMTP, session: Session, envelope: Envelope, mechanism: str, data: object) -> AuthResult:
        ok = isinstance(data, LoginPassword) and (data.login, data.password) == (b"tend", b"s3cret")
        return AuthResult(success=ok)

    server = RecordingSmtpServer(
        tls_context=context, require_starttls=True, auth_required=True, authenticator=authenticator
    ).start()
    yield server, ca_file
    server.stop()


def test_starttls_and_sign_in(tls_server: tuple[RecordingSmtpServer, Path]) -> None:
    server, ca_file = tls_server
    settings = _smtp_settings(
        server, smtp_security="starttls", smtp_ca_file=str(ca_file), smtp_username="tend", smtp_password="s3cret"
    )
    transport = SmtpTransport(settings)
    assert transport.send(_mail(), _nothing).result == SENT
    transport.close()
    assert len(server.wait_for(1)) == 1
    # Without STARTTLS the server refuses the session: a configuration problem, retried, never sent in the clear.
    plain = SmtpTransport(_smtp_settings(server))
    refused = plain.send(_mail(2), _nothing)
    assert (refused.result, refused.smtp_code) == (DEFERRED, 530)
    wrong_password = SmtpTransport(replace(settings, smtp_password="wrong", smtp_timeout_seconds=1))
    assert wrong_password.send(_mail(3), _nothing).result == DEFERRED
    untrusted = SmtpTransport(replace(settings, smtp_ca_file=""))
    assert untrusted.send(_mail(4), _nothing).result == DEFERRED
    assert server.count() == 1


def test_test_mode_writes_one_file_per_message_id(tmp_path: Path) -> None:
    mailbox = MailboxTransport(tmp_path / "mailbox")
    mail = _mail(data=b"Message-ID: <" + str(uuid.uuid4()).encode() + b"@example.ac.uk>\r\n\r\nHello\r\n")
    assert mailbox.send(mail, _nothing).result == SENT
    assert mailbox.send(mail, _nothing).result == SENT
    files = list((tmp_path / "mailbox").iterdir())
    assert [f.name for f in files] == ["m0_example.ac.uk.eml"]
    assert files[0].read_bytes() == mail.data


def test_the_sink_keeps_every_copy(tmp_path: Path) -> None:
    from services.notify.tests.process_harness import mailbox, smtp_sink

    directory = tmp_path / "sink"
    with smtp_sink(directory) as port:
        transport = SmtpTransport(Settings(smtp_host="127.0.0.1", smtp_port=port, smtp_timeout_seconds=5))
        outcomes = [transport.send(mail, _nothing).result for mail in (_mail(1), _mail(1), _mail(2))]
        transport.close()
    assert outcomes == [SENT] * 3
    assert sorted(p.name for p in mailbox(directory)) == [
        "m1_example.ac.uk.2.eml",
        "m1_example.ac.uk.eml",
        "m2_example.ac.uk.eml",
    ]
