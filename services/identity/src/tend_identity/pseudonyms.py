"""Keyed pseudonyms: stable for a person within an academic year, unrelated across years, and useless without the
year's secret, which identity alone holds."""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import uuid

from tend_identity.store import Connection
from tend_identity.store import keys as key_store

PREFIX = "p_"
SECRET_BYTES = 32


def derive_pseudonym(secret: bytes, person_id: uuid.UUID) -> str:
    """HMAC-SHA256 of the person id under the year's secret, as lower-case base32 without padding."""
    digest = hmac.new(secret, person_id.bytes, hashlib.sha256).digest()
    return PREFIX + base64.b32encode(digest).decode("ascii").rstrip("=").lower()


def pseudonym_of(conn: Connection, person_id: uuid.UUID, academic_year: str) -> str:
    """The person's pseudonym for the year, recording the mapping so identity can resolve it later. The year's
    secret is created on first use."""
    secret = key_store.pseudonym_secret(conn, academic_year)
    if secret is None:
        key_store.add_pseudonym_secret(conn, academic_year, secrets.token_bytes(SECRET_BYTES))
        # Another process may have created it first; read back whichever secret won.
        secret = key_store.pseudonym_secret(conn, academic_year)
        if secret is None:
            raise RuntimeError("pseudonym secret missing after it was created")
    pseudonym = derive_pseudonym(secret, person_id)
    key_store.record_pseudonym(conn, pseudonym, person_id, academic_year)
    return pseudonym
