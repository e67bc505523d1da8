"""The e-mail on the wire: headers, Message-ID from the request id, a text and an HTML part, the sender allow-list."""

from __future__ import annotations

import email
import email.policy
import uuid
from datetime import UTC, datetime
from email.message import EmailMessage

import pytest

from tend_notify.composing import AddressRejected, compose
from tend_notify.templates import RenderedMessage

RENDERED = RenderedMessage("How are things going, Sam?", "Dear Sam,\n.\nBest", "<p>Dear Sam,</p>")
REQUEST_ID = uuid.UUID("3f1c2a9e-1111-4222-8333-444455556666")


def _compose(**overrides: object) -> bytes:
    options: dict[str, object] = {
        "request_id": REQUEST_ID,
        "from_name": "Dr Alex Example (the University)",
        "from_address": "tend@example.ac.uk",
        "to_name": "Sam Student",
        "to_address": "sam@students.example.ac.uk",
        "reply_to": "alex@example.ac.uk",
        "sent_at": datetime(2026, 11, 26, 10, 0, tzinfo=UTC),
        "allowed_sender_domains": ("example.ac.uk",),
        "automatic": False,
    }
    options.update(overrides)
    return compose(RENDERED, **options).data  # type: ignore[arg-type]


def _parse(data: bytes) -> EmailMessage:
    message = email.message_from_bytes(data, policy=email.policy.default)
    assert isinstance(message, EmailMessage)
    return message


def test_headers_and_parts() -> None:
    message = _parse(_compose())
    assert message["Message-ID"] == f"<{REQUEST_ID}@example.ac.uk>"
    assert message["X-Tend-Request-Id"] == str(REQUEST_ID)
    assert message["From"] == '"Dr Alex Example (the University)" <tend@example.ac.uk>'
    assert message["To"] == "Sam Student <sam@students.example.ac.uk>"
    assert message["Reply-To"] == '"Dr Alex Example (the University)" <alex@example.ac.uk>'
    assert message["Subject"] == "How are things going, Sam?"
    assert message["Auto-Submitted"] is None
    assert message.get_content_type() == "multipart/alternative"
    text = message.get_body(("plain",))
    html = message.get_body(("html",))
    assert text is not None
    assert html is not None
    assert text.get_content().replace("\r\n", "\n") == "Dear Sam,\n.\nBest\n"
    assert html.get_content().strip() == "<p>Dear Sam,</p>"


def test_the_same_request_always_has_the_same_message_id() -> None:
    first = _parse(_compose(sent_at=datetime(2026, 11, 26, 10, 0, tzinfo=UTC)))
    retry = _parse(_compose(sent_at=datetime(2026, 11, 26, 11, 0, tzinfo=UTC)))
    assert first["Message-ID"] == retry["Message-ID"]


def test_lines_end_in_crlf_for_the_wire() -> None:
    data = _compose()
    assert b"\r\n" in data
    assert b"\n" not in data.replace(b"\r\n", b"")


def test_a_name_cannot_add_headers() -> None:
    data = _compose(to_name="Sam\r\nBcc: victim@example.com")
    message = _parse(data)
    assert message["Bcc"] is None
    assert b"\r\nBcc:" not in data


def test_automatic_digests_say_so() -> None:
    message = _parse(_compose(automatic=True, reply_to=""))
    assert message["Auto-Submitted"] == "auto-generated"
    assert message["Reply-To"] is None


def test_only_allowed_sending_domains() -> None:
    with pytest.raises(AddressRejected, match="allow-list"):
        _compose(from_address="tend@elsewhere.example.com")
    with pytest.raises(AddressRejected, match="malformed"):
        _compose(to_address="not an address")


def test_names_and_subjects_beyond_ascii_survive_the_trip() -> None:
    rendered = RenderedMessage("Sut mae, Siân? 🙂", "Annwyl Siân,\n\nCroeso — café?", "<p>Annwyl Siân</p>")
    data = compose(
        rendered,
        request_id=REQUEST_ID,
        from_name="Dr Łukasz Żółw (Prifysgol)",
        from_address="tend@example.ac.uk",
        to_name="Siân Ó Briain",
        to_address="sian@students.example.ac.uk",
        reply_to="lukasz@example.ac.uk",
        sent_at=datetime(2026, 11, 26, 10, 0, tzinfo=UTC),
        allowed_sender_domains=("example.ac.uk",),
        automatic=False,
    ).data
    assert data.isascii()
    message = _parse(data)
    assert message["Subject"] == "Sut mae, Siân? 🙂"
    assert message["To"].addresses[0].display_name == "Siân Ó Briain"
    assert message["From"].addresses[0].display_name == "Dr Łukasz Żółw (Prifysgol)"
    text = message.get_body(("plain",))
    html = message.get_body(("html",))
    assert text is not None
    assert html is not None
    assert text.get_content().replace("\r\n", "\n") == "Annwyl Siân,\n\nCroeso — café?\n"
    assert html.get_content().strip() == "<p>Annwyl Siân</p>"


def test_long_lines_are_wrapped_for_the_wire_and_restored() -> None:
    long_text = "word " * 400
    rendered = RenderedMessage("Hello", long_text, "<p>" + long_text + "</p>")
    data = compose(
        rendered,
        request_id=REQUEST_ID,
        from_name="A",
        from_address="tend@example.ac.uk",
        to_name="B",
        to_address="b@example.ac.uk",
        reply_to="",
        sent_at=datetime(2026, 11, 26, 10, 0, tzinfo=UTC),
        allowed_sender_domains=("example.ac.uk",),
        automatic=False,
    ).data
    head, _, body = data.partition(b"\r\n\r\n")
    assert max(len(line) for line in body.split(b"\r\n")) <= 76
    assert max(len(line) for line in head.split(b"\r\n")) <= 78
    text = _parse(data).get_body(("plain",))
    assert text is not None
    assert text.get_content().replace("\r\n", "\n") == long_text + "\n"
