"""The audit log: each event appended once, and every kind of tampering found and named."""

from __future__ import annotations

import base64
import subprocess
import sys

import psycopg
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat
from tend.audit.v1 import events_pb2

from services.audit.tests.helpers import append_many
from tend_audit import records, tree_heads
from tend_audit.chain import GENESIS, chain_hash, leaf_hash
from tend_audit.signing import SigningKey
from tend_audit.upgrade import build_missing_tree
from tend_audit.verify import verify_log
from tend_common.messaging.consumer import Delivery, PoisonMessage
from tend_common.messaging.envelope import envelope, new_meta


def _delivery(action: str = "teaching_session.open", schema_version: int = 1, actor_id: str = "person-1") -> Delivery:
    message = events_pb2.AuditEvent(
        meta=new_meta("checkin"),
        actor=events_pb2.Actor(kind=events_pb2.ACTOR_KIND_PERSON, id=actor_id),
        action=action,
        subject=events_pb2.Subject(kind="teaching_session", id="s-1"),
        outcome=events_pb2.OUTCOME_ALLOWED,
        origin_service="checkin",
    )
    event = envelope(message, records.ROUTING_KEY)
    return Delivery(event.routing_key, event.event_id, event.type_name, schema_version, event.body, False)


def _append(dsn: str, deliveries: list[Delivery]) -> None:
    with psycopg.connect(dsn) as conn, conn.cursor() as cur:
        for delivery in deliveries:
            records.append(cur, records.parse_delivery(delivery))


def _verify(dsn: str) -> tuple[bool, int | None, str]:
    with psycopg.connect(dsn) as conn:
        result = verify_log(conn)
    return result.ok, result.first_bad_seq, result.problem


def _verify_both_ways(dsn: str) -> tuple[bool, int | None, str]:
    """In one process, and with the bodies after the first quarter checked by a second process (as for large logs):
    the same answer either way."""
    alone = _verify(dsn)
    with psycopg.connect(dsn) as conn:
        split = verify_log(conn, dsn=dsn, parallel_from=0)
    assert (split.ok, split.first_bad_seq, split.problem) == alone
    return alone


def test_events_are_appended_in_order_once(dsn: str) -> None:
    deliveries = [_delivery(action=f"action.{n}") for n in range(5)]
    _append(dsn, [*deliveries, deliveries[2]])
    with psycopg.connect(dsn) as conn:
        rows = conn.execute("SELECT seq, action, actor_kind, outcome FROM audit_log ORDER BY seq").fetchall()
    assert rows == [(n + 1, f"action.{n}", "person", "allowed") for n in range(5)]
    assert _verify(dsn) == (True, None, "")


@pytest.mark.parametrize(
    ("delivery", "reason"),
    [
        (_delivery(schema_version=7), "unsupported schema version 7"),
        (_delivery(action=""), "missing action"),
        (_delivery(actor_id=""), "missing actor.id"),
    ],
)
def test_malformed_events_are_poison(delivery: Delivery, reason: str) -> None:
    with pytest.raises(PoisonMessage, match=reason):
        records.parse_delivery(delivery)


TAMPERING = {
    "a column changed": (
        "UPDATE audit_log SET actor_id = 'someone-else' WHERE seq = 3",
        3,
        "a column no longer matches",
    ),
    "a body replaced": (
        "UPDATE audit_log SET event_body = (SELECT event_body FROM audit_log WHERE seq = 1) WHERE seq = 3",
        3,
        "event body changed",
    ),
    "a record removed": ("DELETE FROM audit_log WHERE seq = 3", 3, "record 3 removed"),
    "the last record removed": ("DELETE FROM audit_log WHERE seq = 5", 5, "removed from the end"),
    "two records swapped": (
        "UPDATE audit_log SET seq = CASE seq WHEN 2 THEN -3 WHEN 3 THEN -2 END WHERE seq IN (2, 3);"
        " UPDATE audit_log SET seq = -seq WHERE seq < 0",
        2,
        "chain broken",
    ),
    "a record inserted": (
        "UPDATE audit_log SET seq = -(seq + 1) WHERE seq >= 4; UPDATE audit_log SET seq = -seq WHERE seq < 0;"
        " INSERT INTO audit_log SELECT 4, 'forged', event_body,"
        " occurred_at, received_at, actor_kind, actor_id, action, subject_kind, subject_id, purpose, outcome,"
        " origin_service, request_id, leaf_hash, chain_hash FROM audit_log WHERE seq = 3",
        4,
        "",
    ),
}


@pytest.mark.parametrize("tampering", list(TAMPERING))
def test_tampering_is_found_and_the_record_named(dsn: str, tampering: str) -> None:
    _append(dsn, [_delivery(action=f"action.{n}") for n in range(5)])
    sql, bad_seq, problem = TAMPERING[tampering]
    with psycopg.connect(dsn) as conn:
        for statement in sql.split(";"):
            conn.execute(statement.encode())
    ok, first_bad, found = _verify_both_ways(dsn)
    assert not ok
    assert first_bad == bad_seq
    assert problem in found


def test_verify_command_exits_non_zero_and_names_the_record(dsn: str) -> None:
    _append(dsn, [_delivery(action=f"action.{n}") for n in range(3)])
    env = {"TEND_AUDIT_DATABASE_URL": dsn, "PATH": ""}
    ok = subprocess.run(
        [sys.executable, "-m", "tend_audit", "verify"], env=env, capture_output=True, text=True, check=False
    )
    assert ok.returncode == 0, ok.stderr
    assert "3 records" in ok.stdout
    with psycopg.connect(dsn) as conn:
        conn.execute("UPDATE audit_log SET purpose = 'changed' WHERE seq = 2")
    failed = subprocess.run(
        [sys.executable, "-m", "tend_audit", "verify"], env=env, capture_output=True, text=True, check=False
    )
    assert failed.returncode == 1
    assert "record 2" in failed.stderr


# --- tampering that also rewrites the hashes: only the signed tree heads can tell ---


def _sign(dsn: str, key: SigningKey) -> int:
    with psycopg.connect(dsn) as conn:
        head = tree_heads.sign_current(conn, key)
    assert head is not None
    return head.tree_size


def _rewrite_with_hashes(dsn: str, seq: int, actor_id: str) -> None:
    """What someone with write access and the code, but not the signing key, could do: change a record and
    recompute every leaf, chain and tree hash after it, so the log is consistent with itself."""
    with psycopg.connect(dsn) as conn:
        row = conn.execute("SELECT event_body FROM audit_log WHERE seq = %s", (seq,)).fetchone()
        assert row is not None
        event = events_pb2.AuditEvent.FromString(bytes(row[0]))
        event.actor.id = actor_id
        conn.execute(
            "UPDATE audit_log SET event_body = %s, actor_id = %s WHERE seq = %s",
            (event.SerializeToString(deterministic=True), actor_id, seq),
        )
        chained = GENESIS
        for current, body in conn.execute("SELECT seq, event_body FROM audit_log ORDER BY seq").fetchall():
            leaf = leaf_hash(bytes(body))
            chained = chain_hash(chained, leaf)
            conn.execute(
                "UPDATE audit_log SET leaf_hash = %s, chain_hash = %s WHERE seq = %s", (leaf, chained, current)
            )
        conn.execute("DELETE FROM merkle_nodes")
        conn.execute("UPDATE audit_log_head SET chain_hash = %s, frontier = '{}'", (chained,))
        conn.commit()
        build_missing_tree(conn)


def test_a_record_rewritten_with_its_hashes_breaks_the_signed_head_that_covers_it(
    dsn: str, signing_key: SigningKey
) -> None:
    append_many(dsn, 4)
    _sign(dsn, signing_key)
    append_many(dsn, 5)
    _sign(dsn, signing_key)
    _rewrite_with_hashes(dsn, 6, "someone-else")
    ok, first_bad, problem = _verify_both_ways(dsn)
    assert not ok
    assert first_bad == 5
    assert "signed tree head at 9 records" in problem
    assert "from 5 to 9" in problem


def test_records_cut_from_the_end_with_the_head_rewritten_are_found(dsn: str, signing_key: SigningKey) -> None:
    append_many(dsn, 6)
    _sign(dsn, signing_key)
    with psycopg.connect(dsn) as conn:
        conn.execute("DELETE FROM audit_log WHERE seq > 4")
        conn.execute("DELETE FROM merkle_nodes")
        conn.execute("UPDATE audit_log_head SET seq = 4, chain_hash = (SELECT chain_hash FROM audit_log WHERE seq = 4)")
        conn.execute("UPDATE audit_log_head SET frontier = '{}'")
        conn.commit()
        build_missing_tree(conn)
    ok, first_bad, problem = _verify(dsn)
    assert (ok, first_bad) == (False, 5)
    assert "a signed tree head covers 6" in problem


def test_a_signed_tree_head_changed_is_found(dsn: str, signing_key: SigningKey) -> None:
    append_many(dsn, 5)
    _sign(dsn, signing_key)
    with psycopg.connect(dsn) as conn:
        conn.execute("UPDATE signed_tree_heads SET root_hash = sha256(root_hash)")
    ok, _first_bad, problem = _verify(dsn)
    assert not ok
    assert problem == "the signed tree head at 5 records has a bad signature"


def test_a_head_signed_with_a_planted_key_fails_against_the_trusted_key(dsn: str, signing_key: SigningKey) -> None:
    append_many(dsn, 5)
    _rewrite_with_hashes(dsn, 2, "someone-else")
    planted = Ed25519PrivateKey.generate()
    planted_key = SigningKey.from_private_bytes(planted.private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption()))
    with psycopg.connect(dsn) as conn:
        conn.execute(
            "INSERT INTO signing_keys (key_id, public_key) VALUES (%s, %s)",
            (planted_key.key_id, planted_key.public_bytes),
        )
        conn.commit()
        tree_heads.sign_current(conn, planted_key)
        assert verify_log(conn).ok  # the database's own keys include the planted one
        pinned = verify_log(conn, trusted_keys={signing_key.key_id: signing_key.public_bytes})
    assert not pinned.ok
    assert pinned.problem == "the signed tree head at 5 records has a bad signature"


def test_a_stored_tree_node_changed_is_found(dsn: str) -> None:
    append_many(dsn, 8)
    with psycopg.connect(dsn) as conn:
        conn.execute("UPDATE merkle_nodes SET hash = sha256(hash) WHERE level = 2 AND idx = 1")
    ok, _first_bad, problem = _verify(dsn)
    assert not ok
    assert problem == "tree node at level 2, index 1 (records 5-8) no longer matches the records under it"


def test_a_stored_tree_node_removed_is_found(dsn: str) -> None:
    append_many(dsn, 8)
    with psycopg.connect(dsn) as conn:
        conn.execute("DELETE FROM merkle_nodes WHERE level = 3")
    ok, _first_bad, problem = _verify(dsn)
    assert not ok
    assert problem == "tree node at level 3, index 0 (records 1-8) is missing"


def test_verify_reports_signed_heads_and_can_pin_the_key(dsn: str, signing_key: SigningKey) -> None:
    append_many(dsn, 3)
    _sign(dsn, signing_key)
    env = {"TEND_AUDIT_DATABASE_URL": dsn, "PATH": ""}
    pinned = base64.b64encode(signing_key.public_bytes).decode()
    other = base64.b64encode(bytes(32)).decode()
    ok = subprocess.run(
        [sys.executable, "-m", "tend_audit", "verify", "--public-key", pinned],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert ok.returncode == 0, ok.stderr
    assert "3 records, 1 signed tree heads" in ok.stdout
    wrong = subprocess.run(
        [sys.executable, "-m", "tend_audit", "verify", "--public-key", other],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert wrong.returncode == 1
    assert "bad signature" in wrong.stderr
