from __future__ import annotations

from tend_identity import passwords


def test_a_hash_verifies_its_password_only() -> None:
    password_hash = passwords.hash_password("correct horse")

    assert password_hash.startswith("$argon2id$")
    assert "correct horse" not in password_hash
    assert passwords.verify_password(password_hash, "correct horse")
    assert not passwords.verify_password(password_hash, "correct horse ")
    assert not passwords.needs_rehash(password_hash)


def test_a_missing_or_malformed_hash_never_verifies() -> None:
    assert not passwords.verify_password(None, "anything")
    assert not passwords.verify_password("not a hash", "anything")
    assert not passwords.verify_password("", "")
