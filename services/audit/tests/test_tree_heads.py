"""Signed tree heads at intervals (every N records or T seconds), the signing key's origin, and batch appends."""

from __future__ import annotations

import base64
from datetime import UTC, datetime, timedelta

import psycopg
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat

from services.audit.tests import rfc9162
from services.audit.tests.helpers import append, append_many, audit_event
from tend_audit import tree_heads
from tend_audit.service import batch_handler
from tend_audit.signing import SigningKey, SigningKeyError, load_signing_key, public_keys
from tend_common.db import open_pool

NOW = datetime(2026, 11, 2, 9, 0, 0, 123456, tzinfo=UTC)


def _sizes(dsn: str) -> list[int]:
    with psycopg.connect(dsn) as conn:
        return [int(r[0]) for r in conn.execute("SELECT tree_size FROM signed_tree_heads ORDER BY tree_size")]


def test_a_head_is_signed_every_n_records_or_after_t_seconds(dsn: str, signing_key: SigningKey) -> None:
    with psycopg.connect(dsn) as conn:

        def due(at: datetime) -> tree_heads.SignedTreeHead | None:
            return tree_heads.sign_if_due(conn, signing_key, every_records=10, every_seconds=60, now=at)

        assert due(NOW) is None  # nothing to sign
        append_many(dsn, 4)
        first = due(NOW)  # no head yet: the first records are signed at once
        assert first is not None
        assert first.tree_size == 4
        assert first.signed_at == NOW.replace(microsecond=123000)
        append_many(dsn, 5)
        assert due(NOW + timedelta(seconds=59)) is None  # 5 < 10 records, and younger than 60 s
        assert due(NOW + timedelta(seconds=61)) is not None  # old enough
        append_many(dsn, 10)
        assert due(NOW + timedelta(seconds=62)) is not None  # 10 records
        assert due(NOW + timedelta(seconds=500)) is None  # nothing new
    assert _sizes(dsn) == [4, 9, 19]


def test_signing_the_same_size_twice_keeps_the_first_head(dsn: str, signing_key: SigningKey) -> None:
    append_many(dsn, 3)
    with psycopg.connect(dsn) as conn:
        first = tree_heads.sign_current(conn, signing_key, NOW)
        again = tree_heads.sign_current(conn, signing_key, NOW + timedelta(hours=1))
    assert first == again
    assert first is not None
    with psycopg.connect(dsn) as conn:
        bodies = [bytes(r[0]) for r in conn.execute("SELECT event_body FROM audit_log ORDER BY seq")]
    assert first.root_hash == rfc9162.tree_hash(bodies)


def test_a_generated_key_is_kept_and_reused(dsn: str) -> None:
    with psycopg.connect(dsn) as conn:
        first = load_signing_key(conn, "")
        second = load_signing_key(conn, "")
        assert first.key_id == second.key_id
        assert public_keys(conn) == {first.key_id: first.public_bytes}


def test_a_key_from_the_setting_is_used_and_its_public_half_recorded(dsn: str) -> None:
    raw = Ed25519PrivateKey.generate().private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption())
    with psycopg.connect(dsn) as conn:
        key = load_signing_key(conn, base64.b64encode(raw).decode())
        assert public_keys(conn) == {key.key_id: key.public_bytes}
        private = conn.execute("SELECT private_key FROM signing_keys").fetchone()
    assert private == (None,)


def test_a_malformed_key_setting_is_refused(dsn: str) -> None:
    with psycopg.connect(dsn) as conn, pytest.raises(SigningKeyError, match="32 bytes of base64"):
        load_signing_key(conn, "not-a-key")


def test_a_batch_appends_each_event_once_and_reports_poison_without_losing_the_rest(dsn: str) -> None:
    pool = open_pool(dsn, max_size=2)
    try:
        handle = batch_handler(pool)
        good = [audit_event(action=f"a.{n}") for n in range(4)]
        poison = {
            1: audit_event(schema_version=9),
            3: audit_event(action=""),
        }
        batch = [good[0], poison[1], good[1], poison[3], good[2], good[0], good[3]]
        assert handle(batch) == {1: "unsupported schema version 9", 3: "missing action"}
        assert handle([good[1], good[3]]) == {}  # redelivered: nothing changes
    finally:
        pool.close()
    with psycopg.connect(dsn) as conn:
        rows = conn.execute("SELECT seq, action FROM audit_log ORDER BY seq").fetchall()
    assert rows == [(1, "a.0"), (2, "a.1"), (3, "a.2"), (4, "a.3")]


def test_appends_in_separate_batches_build_the_same_tree_as_one(dsn: str) -> None:
    events = [audit_event(action=f"a.{n}") for n in range(37)]
    for start in range(0, 37, 5):
        append(dsn, events[start : start + 5])
    with psycopg.connect(dsn) as conn:
        root = conn.execute("SELECT root_hash FROM audit_log_head").fetchone()
    assert root == (rfc9162.tree_hash([e.body for e in events]),)
