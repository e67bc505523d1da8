"""Identity's secrets at rest: signing private keys and pseudonym secrets are wrapped with the key-encryption key
(AES-GCM, the row as associated data), existing rows are wrapped at start-up, a wrong key stops identity before it
serves anything, and the key rotates with the previous one accepted for unwrapping."""

from __future__ import annotations

import base64
import os
import subprocess
import sys
import uuid
from datetime import timedelta

import pytest
from psycopg import sql
from psycopg_pool import ConnectionPool

from tend_common.settings import SettingsError
from tend_identity import demo, pseudonyms
from tend_identity.secret_wrapping import (
    SecretWrapping,
    SecretWrappingError,
    kek_id,
    rewrap_stored_secrets,
    wrapping_from_settings,
)
from tend_identity.settings import Settings
from tend_identity.signing import Keyring
from tend_identity.store import keys as key_store

PERSON = demo.demo_id("person", "student001")
YEARS = ("2026/27", "2027/28")


def _kek() -> bytes:
    return os.urandom(32)


def _text(kek: bytes) -> str:
    return base64.b64encode(kek).decode()


def _store_secrets(pool: ConnectionPool, wrapping: SecretWrapping) -> dict[str, object]:
    """Creates a current and a retired signing key and two years' pseudonym secrets under `wrapping`; returns what
    should stay the same whatever wraps them: the raw secrets and what they produce."""
    keyring = Keyring(pool, retired_kept=timedelta(hours=1), wrapping=wrapping)
    retired = keyring.current()
    current = keyring.rotate()
    with pool.connection() as conn:
        names = [pseudonyms.pseudonym_of(conn, wrapping, PERSON, year) for year in YEARS]
        year_secrets = [
            wrapping.unwrap(secret, key_store.PSEUDONYM_KEYS, year)
            for year in YEARS
            if (secret := key_store.pseudonym_secret(conn, year)) is not None
        ]
    return {
        "raw": [retired.private_bytes, current.private_bytes, *year_secrets],
        "kids": [current.kid, retired.kid],
        "pseudonyms": names,
    }


def _what_it_produces(pool: ConnectionPool, wrapping: SecretWrapping) -> tuple[list[str], list[str]]:
    keyring = Keyring(pool, retired_kept=timedelta(hours=1), wrapping=wrapping)
    with pool.connection() as conn:
        names = [pseudonyms.pseudonym_of(conn, wrapping, PERSON, year) for year in YEARS]
    return [key.kid for key in keyring.published()], names


def _database_text(pool: ConnectionPool) -> str:
    """Every row of every table of the database as text (bytea as hex), as a dump would show it."""
    with pool.connection() as conn:
        tables = [row[0] for row in conn.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")]
        return "\n".join(
            str(row[0])
            for table in tables
            for row in conn.execute(sql.SQL("SELECT t::text FROM {} AS t").format(sql.Identifier(table)))
        )


def _holds(text: str, secret: bytes) -> bool:
    return any(
        form in text
        for form in (secret.hex(), base64.b64encode(secret).decode(), base64.urlsafe_b64encode(secret).decode())
    )


def _wrapped_by(pool: ConnectionPool) -> set[str | None]:
    with pool.connection() as conn:
        rows = conn.execute(
            "SELECT wrapped_by FROM signing_keys UNION ALL SELECT wrapped_by FROM pseudonym_keys"
        ).fetchall()
    return {row[0] for row in rows}


def test_the_database_holds_no_raw_secret(demo_pool: ConnectionPool) -> None:
    kek = _kek()
    stored = _store_secrets(demo_pool, SecretWrapping(kek))

    text = _database_text(demo_pool)
    raw = stored["raw"]
    assert isinstance(raw, list)
    assert len(raw) == 4
    assert not [secret for secret in raw if _holds(text, secret)]
    assert not _holds(text, kek)
    assert _wrapped_by(demo_pool) == {kek_id(kek)}


def test_the_scan_finds_raw_secrets_when_they_are_stored_unwrapped(demo_pool: ConnectionPool) -> None:
    """The scan above can fail: unwrapped, every secret is there to find."""
    stored = _store_secrets(demo_pool, SecretWrapping.unwrapped())

    text = _database_text(demo_pool)
    raw = stored["raw"]
    assert isinstance(raw, list)
    assert all(_holds(text, secret) for secret in raw)


def test_start_up_wraps_existing_rows_and_nothing_they_produce_changes(demo_pool: ConnectionPool) -> None:
    stored = _store_secrets(demo_pool, SecretWrapping.unwrapped())
    wrapping = SecretWrapping(_kek())

    with demo_pool.connection() as conn:
        first = rewrap_stored_secrets(conn, wrapping)
    with demo_pool.connection() as conn:
        again = rewrap_stored_secrets(conn, wrapping)

    assert (first.checked, first.rewrapped) == (4, 4)
    assert (again.checked, again.rewrapped) == (4, 0)
    assert _wrapped_by(demo_pool) == {wrapping.current_id}
    raw = stored["raw"]
    assert isinstance(raw, list)
    assert not [secret for secret in raw if _holds(_database_text(demo_pool), secret)]
    assert _what_it_produces(demo_pool, wrapping) == (stored["kids"], stored["pseudonyms"])


def test_rotation_unwraps_with_the_previous_key_and_rewraps_with_the_new_one(demo_pool: ConnectionPool) -> None:
    old, new = _kek(), _kek()
    stored = _store_secrets(demo_pool, SecretWrapping(old))
    rotating = SecretWrapping(new, previous=[old])

    with demo_pool.connection() as conn:
        outcome = rewrap_stored_secrets(conn, rotating)

    assert outcome.rewrapped == 4
    assert _wrapped_by(demo_pool) == {kek_id(new)}
    # The old key is no longer needed, and no longer enough.
    assert _what_it_produces(demo_pool, SecretWrapping(new)) == (stored["kids"], stored["pseudonyms"])
    with demo_pool.connection() as conn, pytest.raises(SecretWrappingError, match="neither"):
        rewrap_stored_secrets(conn, SecretWrapping(old))


def test_a_wrong_key_fails_and_changes_nothing(demo_pool: ConnectionPool) -> None:
    kek = _kek()
    _store_secrets(demo_pool, SecretWrapping(kek))

    with demo_pool.connection() as conn, pytest.raises(SecretWrappingError) as raised:
        rewrap_stored_secrets(conn, SecretWrapping(_kek()))
    with demo_pool.connection() as conn, pytest.raises(SecretWrappingError, match="KEY_ENCRYPTION_KEY is not set"):
        rewrap_stored_secrets(conn, SecretWrapping.unwrapped())

    assert "TEND_IDENTITY_KEY_ENCRYPTION_KEY" in str(raised.value)
    assert "TEND_IDENTITY_PREVIOUS_KEY_ENCRYPTION_KEYS" in str(raised.value)
    assert _wrapped_by(demo_pool) == {kek_id(kek)}


def test_a_wrapped_value_moved_to_another_row_does_not_unwrap(demo_pool: ConnectionPool) -> None:
    wrapping = SecretWrapping(_kek())
    _store_secrets(demo_pool, wrapping)
    with demo_pool.connection() as conn:
        conn.execute(
            "UPDATE pseudonym_keys SET secret = (SELECT secret FROM pseudonym_keys WHERE academic_year = %s)"
            " WHERE academic_year = %s",
            YEARS,
        )

    with demo_pool.connection() as conn, pytest.raises(SecretWrappingError, match="copied from another row"):
        rewrap_stored_secrets(conn, wrapping)


def test_identity_will_not_run_without_a_key_unless_unwrapped_secrets_are_allowed() -> None:
    with pytest.raises(SettingsError, match="TEND_IDENTITY_KEY_ENCRYPTION_KEY is not set"):
        wrapping_from_settings(Settings())
    with pytest.raises(SettingsError, match="base64 of 32 random bytes"):
        wrapping_from_settings(Settings(key_encryption_key=_text(os.urandom(16))))
    with pytest.raises(SettingsError, match="PREVIOUS_KEY_ENCRYPTION_KEYS: only used with"):
        wrapping_from_settings(Settings(previous_key_encryption_keys=(_text(_kek()),)))

    assert wrapping_from_settings(Settings(allow_unwrapped_secrets=True)).current_id is None
    kek = _kek()
    assert wrapping_from_settings(Settings(key_encryption_key=_text(kek))).current_id == kek_id(kek)


def _serve(dsn: str, **settings: str) -> subprocess.CompletedProcess[str]:
    env = {"PATH": "/usr/bin:/bin", "TEND_IDENTITY_DATABASE_URL": dsn, "TEND_IDENTITY_GRPC_PORT": "0"}
    env |= {"TEND_IDENTITY_METRICS_PORT": "0", **{f"TEND_IDENTITY_{k.upper()}": v for k, v in settings.items()}}
    return subprocess.run(
        [sys.executable, "-m", "tend_identity", "serve"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_identity_started_with_a_wrong_key_stops_with_a_clear_message(pool: ConnectionPool, identity_dsn: str) -> None:
    kek = _kek()
    Keyring(pool, retired_kept=timedelta(hours=1), wrapping=SecretWrapping(kek)).current()

    wrong = _serve(identity_dsn, key_encryption_key=_text(_kek()))
    missing = _serve(identity_dsn)

    assert wrong.returncode == 2
    assert "tend-identity serve: signing_keys" in wrong.stderr
    assert f"wrapped with the key-encryption key {kek_id(kek)}" in wrong.stderr
    assert "Traceback" not in wrong.stderr
    assert missing.returncode == 2
    assert "TEND_IDENTITY_KEY_ENCRYPTION_KEY is not set" in missing.stderr
    assert "TEND_IDENTITY_ALLOW_UNWRAPPED_SECRETS=true" in missing.stderr
    assert _text(kek) not in wrong.stderr + wrong.stdout


def test_unwrap_needs_the_row_it_was_wrapped_for() -> None:
    wrapping = SecretWrapping(_kek())
    secret = os.urandom(32)
    kid = uuid.uuid4().hex

    stored = wrapping.wrap(secret, key_store.SIGNING_KEYS, kid)

    assert stored.value != secret
    assert len(stored.value) == 12 + 32 + 16
    assert wrapping.unwrap(stored, key_store.SIGNING_KEYS, kid) == secret
    with pytest.raises(SecretWrappingError):
        wrapping.unwrap(stored, key_store.SIGNING_KEYS, "another")
    with pytest.raises(SecretWrappingError):
        wrapping.unwrap(stored, key_store.PSEUDONYM_KEYS, kid)
