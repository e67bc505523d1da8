"""Identity's secrets at rest (signing private keys, pseudonym secrets), wrapped with a key-encryption key (KEK).

A wrapped value is AES-256-GCM under the KEK: a 12-byte random nonce, then the ciphertext and its tag. The row's
table and id are the associated data, so a wrapped value copied into another row does not unwrap. Each row names the
KEK that wrapped it by the KEK's id (a hash of it, which reveals nothing of it), or NULL when stored unwrapped.

The KEK comes from a secret (TEND_IDENTITY_KEY_ENCRYPTION_KEY), never from the database. Earlier KEKs
(TEND_IDENTITY_PREVIOUS_KEY_ENCRYPTION_KEYS) are used only to unwrap; at start-up every row is unwrapped (so a wrong
KEK stops identity before it serves anything) and rewrapped under the current KEK if it is not already.
"""

from __future__ import annotations

import base64
import binascii
import functools
import hashlib
import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from tend_common.settings import SettingsError
from tend_identity.settings import PREFIX, Settings
from tend_identity.store import Connection
from tend_identity.store import keys as key_store
from tend_identity.store.keys import StoredSecret

log = logging.getLogger(__name__)

KEK_BYTES = 32
NONCE_BYTES = 12
TAG_BYTES = 16
KEK_SETTING = f"{PREFIX}KEY_ENCRYPTION_KEY"
PREVIOUS_KEKS_SETTING = f"{PREFIX}PREVIOUS_KEY_ENCRYPTION_KEYS"
ALLOW_UNWRAPPED_SETTING = f"{PREFIX}ALLOW_UNWRAPPED_SECRETS"


class SecretWrappingError(Exception):
    """A stored secret cannot be unwrapped with the key-encryption keys configured."""


def parse_kek(text: str, setting: str) -> bytes:
    """A KEK from its base64 text; SettingsError naming `setting` when it is not base64 of 32 bytes."""
    try:
        raw = base64.b64decode(text.strip(), validate=True)
    except (binascii.Error, ValueError):
        raw = b""
    if len(raw) != KEK_BYTES:
        raise SettingsError(
            f"{setting}: must be base64 of {KEK_BYTES} random bytes, for example the output of: openssl rand -base64 32"
        )
    return raw


def kek_id(kek: bytes) -> str:
    """The KEK's name in the database: the start of a domain-separated SHA-256 of it, hex."""
    return hashlib.sha256(b"tend-identity-kek-id:" + kek).hexdigest()[:16]


def associated_data(table: str, row_id: str) -> bytes:
    return f"{table}:{row_id}".encode()


class SecretWrapping:
    """Wraps new secrets under the current KEK (or stores them raw when there is none: development only) and unwraps
    stored ones under whichever configured KEK wrapped them."""

    def __init__(self, current: bytes | None, previous: Sequence[bytes] = ()) -> None:
        self._current = current
        self._current_id = kek_id(current) if current is not None else None
        self._keks = {kek_id(kek): kek for kek in previous}
        if current is not None:
            self._keks[kek_id(current)] = current

    @classmethod
    def unwrapped(cls) -> SecretWrapping:
        """No KEK: new secrets are stored raw, and wrapped ones cannot be read."""
        return cls(None)

    @property
    def current_id(self) -> str | None:
        return self._current_id

    def wrap(self, secret: bytes, table: str, row_id: str) -> StoredSecret:
        if self._current is None:
            return StoredSecret(secret, None)
        nonce = os.urandom(NONCE_BYTES)
        sealed = AESGCM(self._current).encrypt(nonce, secret, associated_data(table, row_id))
        return StoredSecret(nonce + sealed, self._current_id)

    def unwrap(self, stored: StoredSecret, table: str, row_id: str) -> bytes:
        if stored.wrapped_by is None:
            return stored.value
        kek = self._keks.get(stored.wrapped_by)
        if kek is None:
            configured = (
                f"{KEK_SETTING} is not set" if self._current_id is None else f"{KEK_SETTING} is {self._current_id}"
            )
            raise SecretWrappingError(
                f"{table} {row_id} is wrapped with the key-encryption key {stored.wrapped_by}, which is neither"
                f" {KEK_SETTING} nor one of {PREVIOUS_KEKS_SETTING} ({configured}; ids are shown, never keys)"
            )
        try:
            return AESGCM(kek).decrypt(
                stored.value[:NONCE_BYTES], stored.value[NONCE_BYTES:], associated_data(table, row_id)
            )
        except InvalidTag:
            raise SecretWrappingError(
                f"{table} {row_id} does not unwrap with key-encryption key {stored.wrapped_by}: the stored value was"
                " changed or copied from another row"
            ) from None

    def is_current(self, stored: StoredSecret) -> bool:
        """Whether the row is stored as this wrapping would store it now (nothing to rewrap)."""
        return stored.wrapped_by == self._current_id


@functools.cache
def _warn_unwrapped_once() -> None:
    log.warning(
        "secrets are stored unwrapped: no key-encryption key configured", extra={"fields": {"setting": KEK_SETTING}}
    )


def wrapping_from_settings(settings: Settings) -> SecretWrapping:
    """The wrapping the settings configure. Without a KEK, identity stores its secrets raw only when that is allowed
    explicitly (development; a warning, once per process); otherwise a SettingsError stops it."""
    previous = [parse_kek(text, PREVIOUS_KEKS_SETTING) for text in settings.previous_key_encryption_keys]
    if settings.key_encryption_key:
        return SecretWrapping(parse_kek(settings.key_encryption_key, KEK_SETTING), previous)
    if previous:
        raise SettingsError(f"{PREVIOUS_KEKS_SETTING}: only used with {KEK_SETTING}, which is not set")
    if not settings.allow_unwrapped_secrets:
        raise SettingsError(
            f"{KEK_SETTING} is not set. Identity wraps its signing keys and pseudonym secrets with it; set it to base64"
            f" of 32 random bytes (openssl rand -base64 32), or set {ALLOW_UNWRAPPED_SETTING}=true on a development"
            " machine to store them unwrapped"
        )
    _warn_unwrapped_once()
    return SecretWrapping.unwrapped()


@dataclass(frozen=True)
class RewrapOutcome:
    checked: int
    rewrapped: int


def rewrap_stored_secrets(conn: Connection, wrapping: SecretWrapping) -> RewrapOutcome:
    """Unwraps every stored secret (SecretWrappingError if one cannot be) and rewraps those not under the current
    KEK, in one transaction, rows locked, so that replicas starting together do it once. Without a KEK nothing is
    rewritten: wrapped rows then fail here rather than on the first request that needs them."""
    checked = rewrapped = 0
    with conn.transaction():
        for table, row_id, stored in key_store.stored_secrets_for_update(conn):
            secret = wrapping.unwrap(stored, table, row_id)
            checked += 1
            if wrapping.current_id is not None and not wrapping.is_current(stored):
                key_store.replace_stored_secret(conn, table, row_id, wrapping.wrap(secret, table, row_id))
                rewrapped += 1
    return RewrapOutcome(checked, rewrapped)
