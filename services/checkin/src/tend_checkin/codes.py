"""Rotating check-in codes, in the manner of RFC 6238 (TOTP) with HMAC-SHA256.

A session's code changes every `step_seconds`. Verification accepts the current step and `previous_steps` before it
(one by default), so a student who reads the code just before it rotates still gets in, while a code passed on to
someone outside the room stops working within `previous_steps + 1` steps. Pure functions: the caller passes the time.
"""

from __future__ import annotations

import hashlib
import hmac
from datetime import UTC, datetime

_ASCII_DIGITS = frozenset("0123456789")


def time_step(moment: datetime, step_seconds: int) -> int:
    """The number of whole steps since the Unix epoch at `moment` (which must be timezone-aware)."""
    return int(moment.timestamp() // step_seconds)


def code_for_step(secret: bytes, step: int, digits: int) -> str:
    """The code of one time step: HMAC-SHA256 of the step as 8 big-endian bytes, dynamically truncated."""
    mac = hmac.new(secret, step.to_bytes(8, "big"), hashlib.sha256).digest()
    offset = mac[-1] & 0x0F
    truncated = int.from_bytes(mac[offset : offset + 4], "big") & 0x7FFFFFFF
    return str(truncated % 10**digits).zfill(digits)


def current_code(secret: bytes, now: datetime, step_seconds: int, digits: int) -> str:
    return code_for_step(secret, time_step(now, step_seconds), digits)


def rotates_at(now: datetime, step_seconds: int) -> datetime:
    """When the code current at `now` stops being current."""
    return datetime.fromtimestamp((time_step(now, step_seconds) + 1) * step_seconds, UTC)


def is_well_formed(candidate: str, digits: int) -> bool:
    """Exactly `digits` ASCII digits (str.isdigit would also accept other scripts' digits)."""
    return len(candidate) == digits and set(candidate) <= _ASCII_DIGITS


def verify_code(
    secret: bytes, candidate: str, now: datetime, step_seconds: int, digits: int, previous_steps: int = 1
) -> bool:
    """True if `candidate` is the code of the current step or one of the `previous_steps` before it.

    Every comparison always runs, in constant time, so the timing does not tell which step matched or how much of
    the code was right.
    """
    if not is_well_formed(candidate, digits):
        return False
    step = time_step(now, step_seconds)
    given = candidate.encode()
    matched = False
    for back in range(previous_steps + 1):
        matched |= hmac.compare_digest(code_for_step(secret, step - back, digits).encode(), given)
    return matched
