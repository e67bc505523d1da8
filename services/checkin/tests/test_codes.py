"""Rotating codes: RFC 6238 vectors and the accept-current-or-previous-step rule, with fixed clocks."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from tend_checkin import codes

SECRET = bytes(range(32))
STEP = 15
DIGITS = 6
# A step boundary: 1_800_000_000 is a multiple of 15.
BOUNDARY = datetime.fromtimestamp(1_800_000_000, UTC)


def at(seconds_after_boundary: float) -> datetime:
    return BOUNDARY + timedelta(seconds=seconds_after_boundary)


def code_of_step_at(moment: datetime) -> str:
    return codes.current_code(SECRET, moment, STEP, DIGITS)


# RFC 6238 appendix B, HMAC-SHA256 column: 32-byte ASCII secret, 30-second steps, 8 digits.
@pytest.mark.parametrize(
    ("unix_time", "expected"),
    [
        (59, "46119246"),
        (1111111109, "68084774"),
        (1111111111, "67062674"),
        (1234567890, "91819424"),
        (2000000000, "90698825"),
        (20000000000, "77737706"),
    ],
)
def test_matches_rfc_6238_sha256_vectors(unix_time: int, expected: str) -> None:
    secret = b"12345678901234567890123456789012"
    assert codes.current_code(secret, datetime.fromtimestamp(unix_time, UTC), 30, 8) == expected


def test_time_step_floors_unix_time() -> None:
    assert codes.time_step(at(0), STEP) == 1_800_000_000 // STEP
    assert codes.time_step(at(14.999), STEP) == 1_800_000_000 // STEP
    assert codes.time_step(at(-0.001), STEP) == 1_800_000_000 // STEP - 1


def test_current_step_passes_at_both_ends_of_the_step() -> None:
    code = code_of_step_at(at(0))
    assert codes.verify_code(SECRET, code, at(0), STEP, DIGITS)
    assert codes.verify_code(SECRET, code, at(14.999), STEP, DIGITS)


def test_previous_step_passes() -> None:
    previous = code_of_step_at(at(-1))
    # Read just before the rotation, submitted right after it and at the very end of the next step.
    assert codes.verify_code(SECRET, previous, at(0), STEP, DIGITS)
    assert codes.verify_code(SECRET, previous, at(14.999), STEP, DIGITS)


def test_two_steps_old_fails() -> None:
    two_old = code_of_step_at(at(-STEP - 1))
    assert not codes.verify_code(SECRET, two_old, at(0), STEP, DIGITS)
    # ...and the previous-step code expires exactly when its step is two old.
    previous = code_of_step_at(at(-1))
    assert not codes.verify_code(SECRET, previous, at(STEP), STEP, DIGITS)


def test_next_step_fails() -> None:
    upcoming = code_of_step_at(at(STEP))
    assert not codes.verify_code(SECRET, upcoming, at(14.999), STEP, DIGITS)


def test_code_of_another_secret_fails() -> None:
    other = codes.current_code(bytes(32), at(0), STEP, DIGITS)
    assert other != code_of_step_at(at(0))
    assert not codes.verify_code(SECRET, other, at(0), STEP, DIGITS)


def test_codes_always_have_the_configured_number_of_digits() -> None:
    produced = [codes.code_for_step(SECRET, step, DIGITS) for step in range(2000)]
    assert all(len(code) == DIGITS and code.isascii() and code.isdigit() for code in produced)
    # Zero-padding is exercised: about one code in ten starts with 0.
    assert any(code.startswith("0") for code in produced)


@pytest.mark.parametrize("candidate", ["", "12345", "1234567", "12a456", " 12345", "12345 ", "١٢٣٤٥٦", "+12345"])
def test_malformed_codes_are_refused(candidate: str) -> None:
    assert not codes.is_well_formed(candidate, DIGITS)
    assert not codes.verify_code(SECRET, candidate, at(0), STEP, DIGITS)


def test_rotates_at_is_the_next_step_boundary() -> None:
    assert codes.rotates_at(at(0), STEP) == at(STEP)
    assert codes.rotates_at(at(14.999), STEP) == at(STEP)
    assert codes.rotates_at(at(-0.001), STEP) == at(0)
