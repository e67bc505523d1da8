"""Turns a rendered message into the e-mail on the wire: headers, a plain-text and an HTML part.

The Message-ID is derived from the request id, so every attempt to send one request carries the same Message-ID and
a receiving system can recognise a repeat; the request id also travels in its own header.
"""

from __future__ import annotations

import binascii
import email.utils
import re
import secrets
import uuid
from datetime import datetime
from email.header import Header

from tend_notify.templates import RenderedMessage
from tend_notify.transport import OutgoingMail

REQUEST_ID_HEADER = "X-Tend-Request-Id"


class AddressRejected(ValueError):
    """An address cannot be used (malformed, or a sending domain not on the allow-list)."""


def domain_of(address: str) -> str:
    return address.rpartition("@")[2].lower()


def message_id(request_id: uuid.UUID, from_address: str) -> str:
    return f"<{request_id}@{domain_of(from_address)}>"


def _single_line(value: str) -> str:
    return " ".join(value.split())


# Something before and after the last "@"; no white space, angle brackets, quotes, commas, semicolons, non-ASCII.
_ADDRESS = re.compile(r"[!-~]+@[!-~]+")
_NOT_IN_ADDRESS = re.compile(r'[<>",;]')


def _checked_address(address: str) -> str:
    address = address.strip()
    if not _ADDRESS.fullmatch(address) or _NOT_IN_ADDRESS.search(address) or address.endswith("@"):
        raise AddressRejected("an address is malformed")
    return address


def _mailbox(display_name: str, address: str) -> str:
    """`"Name" <address>`, the name encoded (RFC 2047) when it is not plain ASCII."""
    return email.utils.formataddr((_single_line(display_name), _checked_address(address)), charset="utf-8")


def _unstructured(value: str) -> str:
    value = _single_line(value)
    return value if value.isascii() else Header(value, "utf-8").encode()


def _part(content: str, subtype: str) -> bytes:
    """One text part, quoted-printable: readable where it is ASCII, exact everywhere."""
    text = content.replace("\r\n", "\n").replace("\r", "\n")
    text = text if text.endswith("\n") else text + "\n"
    encoded = binascii.b2a_qp(text.encode("utf-8"), istext=True).replace(b"\n", b"\r\n")
    headers = f'Content-Type: text/{subtype}; charset="utf-8"\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n'
    # The line break before a boundary belongs to the boundary, so the text's own last line break needs one more.
    return headers.encode("ascii") + encoded + b"\r\n"


def compose(
    rendered: RenderedMessage,
    *,
    request_id: uuid.UUID,
    from_name: str,
    from_address: str,
    to_name: str,
    to_address: str,
    reply_to: str,
    sent_at: datetime,
    allowed_sender_domains: tuple[str, ...],
    automatic: bool,
) -> OutgoingMail:
    """The message for one request: multipart/alternative, a plain-text then an HTML part. `automatic` marks
    digests that no person wrote (RFC 3834 Auto-Submitted).

    Built directly rather than through the email package's object model, which costs several milliseconds of CPU
    per message; the tests read every message back with the email package's parser.
    """
    if domain_of(from_address) not in {d.lower() for d in allowed_sender_domains}:
        raise AddressRejected("the sending domain is not on the allow-list")
    boundary = "tend-" + secrets.token_hex(16)
    headers = [
        ("Message-ID", message_id(request_id, from_address)),
        (REQUEST_ID_HEADER, str(request_id)),
        ("Date", email.utils.format_datetime(sent_at)),
        ("From", _mailbox(from_name, from_address)),
        ("To", _mailbox(to_name, to_address)),
    ]
    if reply_to:
        headers.append(("Reply-To", _mailbox("" if automatic else from_name, reply_to)))
    headers.append(("Subject", _unstructured(rendered.subject)))
    if automatic:
        headers.append(("Auto-Submitted", "auto-generated"))
    headers += [("MIME-Version", "1.0"), ("Content-Type", f'multipart/alternative;\r\n boundary="{boundary}"')]
    head = "".join(f"{name}: {value}\r\n" for name, value in headers).encode("ascii")
    separator = f"--{boundary}\r\n".encode("ascii")
    data = b"".join(
        [
            head,
            b"\r\n",
            separator,
            _part(rendered.text_body, "plain"),
            separator,
            _part(rendered.html_body, "html"),
            f"--{boundary}--\r\n".encode("ascii"),
        ]
    )
    return OutgoingMail(
        message_id=message_id(request_id, from_address),
        mail_from=_checked_address(from_address),
        rcpt_to=_checked_address(to_address),
        data=data,
    )
