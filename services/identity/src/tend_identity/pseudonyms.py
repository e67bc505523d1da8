"""Keyed pseudonyms: stable for a person within an academic year, unrelated across years, and useless without the
year's secret, which identity alone holds."""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import uuid
from collections.abc import Sequence

from tend_identity.secret_wrapping import SecretWrapping
from tend_identity.store import Connection
from tend_identity.store import keys as key_store

PREFIX = "p_"
SECRET_BYTES = 32


def derive_pseudonym(secret: bytes, person_id: uuid.UUID) -> str:
    """HMAC-SHA256 of the person id under the year's secret, as lower-case base32 without padding."""
    digest = hmac.new(secret, person_id.bytes, hashlib.sha256).digest()
    return PREFIX + base64.b32encode(digest).decode("ascii").rstrip("=").lower()


def _year_secret(conn: Connection, wrapping: SecretWrapping, academic_year: str) -> bytes:
    stored = key_store.pseudonym_secret(conn, academic_year)
    if stored is None:
        new_secret = secrets.token_bytes(SECRET_BYTES)
        key_store.add_pseudonym_secret(
            conn, academic_year, wrapping.wrap(new_secret, key_store.PSEUDONYM_KEYS, academic_year)
        )
        # Another process may have created it first; read back whichever secret won.
        stored = key_store.pseudonym_secret(conn, academic_year)
        if stored is None:
            raise RuntimeError("pseudonym secret missing after it was created")
    return wrapping.unwrap(stored, key_store.PSEUDONYM_KEYS, academic_year)


def pseudonym_of(conn: Connection, wrapping: SecretWrapping, person_id: uuid.UUID, academic_year: str) -> str:
    """The person's pseudonym for the year, recording the mapping so identity can resolve it later. The year's
    secret is created on first use, stored wrapped by `wrapping`."""
    pseudonym = derive_pseudonym(_year_secret(conn, wrapping, academic_year), person_id)
    key_store.record_pseudonym(conn, pseudonym, person_id, academic_year)
    return pseudonym


def pseudonyms_of(
    conn: Connection, wrapping: SecretWrapping, person_ids: Sequence[uuid.UUID], academic_year: str
) -> dict[uuid.UUID, str]:
    """pseudonym_of for many people at once: those already recorded are read, the others derived and recorded."""
    if not person_ids:
        return {}
    known = key_store.recorded_pseudonyms(conn, person_ids, academic_year)
    missing = [person_id for person_id in dict.fromkeys(person_ids) if person_id not in known]
    if missing:
        secret = _year_secret(conn, wrapping, academic_year)
        derived = {person_id: derive_pseudonym(secret, person_id) for person_id in missing}
        key_store.record_pseudonyms(conn, derived, academic_year)
        known.update(derived)
    return known
