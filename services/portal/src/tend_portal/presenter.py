"""What the presenter screen shows: the current code and a QR code of the check-in address, and nothing else."""

from __future__ import annotations

import dataclasses
import math
from datetime import datetime

import segno

from tend_portal.clients import PresenterCode
from tend_portal.redirects import is_checkin_page


class UnexpectedPresenterCode(Exception):
    """Checkin answered with a code or address the portal will not put on a screen."""


@dataclasses.dataclass(frozen=True)
class PresenterScreen:
    code: str
    checkin_url: str
    rotates_at: datetime
    refresh_in_seconds: int
    qr_svg: str

    def as_json(self) -> dict[str, object]:
        return {
            "code": self.code,
            "checkin_url": self.checkin_url,
            "rotates_at": self.rotates_at.isoformat().replace("+00:00", "Z"),
            "refresh_in_seconds": self.refresh_in_seconds,
            "qr_svg": self.qr_svg,
        }


def qr_svg(address: str) -> str:
    """An inline SVG QR code of `address`, dark on an opaque light background so it scans from a projector."""
    qr = segno.make(address, error="m", micro=False)
    svg: str = qr.svg_inline(
        scale=1, border=4, dark="#000", light="#fff", omitsize=True, svgclass="qr-code", lineclass="qr-line"
    )
    return svg


def seconds_until(moment: datetime, now: datetime, step_seconds: int) -> int:
    """Whole seconds until `moment`, at least 1 and at most one step (guards against a clock far off)."""
    remaining = math.ceil((moment - now).total_seconds())
    ceiling = step_seconds if step_seconds > 0 else 60
    return max(1, min(remaining, ceiling))


def presenter_screen(current: PresenterCode, checkin_base_url: str, now: datetime) -> PresenterScreen:
    """Builds the screen, refusing anything but a numeric code and an address on the check-in host."""
    if not (current.code.isascii() and current.code.isdigit() and 4 <= len(current.code) <= 10):
        raise UnexpectedPresenterCode("code is not numeric")
    if not is_checkin_page(current.checkin_url, checkin_base_url):
        raise UnexpectedPresenterCode("check-in address is not on the check-in host")
    return PresenterScreen(
        code=current.code,
        checkin_url=current.checkin_url,
        rotates_at=current.rotates_at,
        refresh_in_seconds=seconds_until(current.rotates_at, now, current.step_seconds),
        qr_svg=qr_svg(current.checkin_url),
    )
