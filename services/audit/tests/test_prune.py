"""Retention: records older than the period are removed under a signed checkpoint, the log still verifies from it,
proofs over older signed heads are still served, and tampering after pruning is still found."""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, datetime, timedelta

import psycopg
import pytest

from services.audit.tests import rfc9162
from services.audit.tests.helpers import append, append_many, audit_event
from tend_audit import proofs, tree_heads
from tend_audit.prune import PruneRefused, prune, retention_cutoff
from tend_audit.signing import SigningKey
from tend_audit.verify import VerificationResult, verify_log

NOW = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
OLD = NOW - timedelta(days=7 * 365)
RECENT = NOW - timedelta(days=30)
CUTOFF = retention_cutoff(NOW, 6)


def _verify(dsn: str) -> VerificationResult:
    with psycopg.connect(dsn) as conn:
        return verify_log(conn)


def _sign(dsn: str, key: SigningKey) -> tree_heads.SignedTreeHead:
    with psycopg.connect(dsn) as conn:
        head = tree_heads.sign_current(conn, key)
    assert head is not None
    return head


def _mixed_log(dsn: str) -> list[bytes]:
    """Five old records, one recent, two old ones that arrived late, three recent: the event bytes, in order."""
    events = [
        *[audit_event(action=f"old.{n}", occurred_at=OLD) for n in range(5)],
        audit_event(action="recent.0", occurred_at=RECENT),
        *[audit_event(action=f"late.{n}", occurred_at=OLD) for n in range(2)],
        *[audit_event(action=f"recent.{n}", occurred_at=RECENT) for n in range(1, 4)],
    ]
    append(dsn, events)
    return [e.body for e in events]


def _prune(dsn: str, key: SigningKey) -> int | None:
    with psycopg.connect(dsn) as conn:
        return prune(conn, key, CUTOFF, NOW).checkpoint_size


def test_the_cutoff_is_whole_calendar_years_back() -> None:
    assert retention_cutoff(datetime(2026, 3, 1, tzinfo=UTC), 6) == datetime(2020, 3, 1, tzinfo=UTC)
    assert retention_cutoff(datetime(2028, 2, 29, tzinfo=UTC), 6) == datetime(2022, 2, 28, tzinfo=UTC)


def test_pruning_removes_the_old_prefix_and_the_log_verifies_from_the_checkpoint(
    dsn: str, signing_key: SigningKey
) -> None:
    bodies = _mixed_log(dsn)
    early = _sign(dsn, signing_key)
    assert _prune(dsn, signing_key) == 5
    with psycopg.connect(dsn) as conn:
        kept = [r[0] for r in conn.execute("SELECT action FROM audit_log ORDER BY seq").fetchall()]
        inbox = conn.execute("SELECT count(*) FROM inbox_processed_events").fetchone()
        checkpoint = conn.execute("SELECT tree_size, root_hash, pruned_before FROM audit_checkpoints").fetchone()
    assert kept == ["recent.0", "late.0", "late.1", "recent.1", "recent.2", "recent.3"]
    assert inbox == (6,)
    assert checkpoint == (5, rfc9162.tree_hash(bodies[:5]), CUTOFF)
    result = _verify(dsn)
    assert (result.ok, result.starts_after, result.records_checked, result.tree_heads_checked) == (True, 5, 6, 1)
    # Proofs still come from the whole tree: a pruned record's inclusion, and consistency with a head signed before.
    with psycopg.connect(dsn) as conn:
        path = proofs.inclusion_proof(conn, 1, early.tree_size)
        assert rfc9162.verify_inclusion(1, 11, rfc9162.hash_leaf(bodies[1]), path, early.root_hash)
        append_many(dsn, 3)
        later = tree_heads.sign_current(conn, signing_key)
        assert later is not None
        proof = proofs.consistency_proof(conn, early.tree_size, later.tree_size)
    assert rfc9162.verify_consistency(11, 14, early.root_hash, later.root_hash, proof)
    assert _verify(dsn).ok


def test_pruning_again_moves_the_checkpoint_on(dsn: str, signing_key: SigningKey) -> None:
    _mixed_log(dsn)
    assert _prune(dsn, signing_key) == 5
    assert _prune(dsn, signing_key) is None  # nothing new is old enough
    with psycopg.connect(dsn) as conn:
        later = prune(conn, signing_key, RECENT + timedelta(days=1), NOW).checkpoint_size
    assert later == 11
    result = _verify(dsn)
    assert (result.ok, result.starts_after, result.records_checked) == (True, 11, 0)
    append_many(dsn, 2)
    assert _verify(dsn).ok


@pytest.mark.parametrize(
    ("sql", "problem"),
    [
        ("UPDATE audit_checkpoints SET root_hash = sha256(root_hash)", "checkpoint at 5 records is not signed"),
        ("DELETE FROM audit_log WHERE seq = 6", "record 6 removed"),
        ("UPDATE audit_log SET purpose = 'changed' WHERE seq = 8", "a column no longer matches"),
        ("DELETE FROM merkle_nodes WHERE level = 0 AND idx = 4", "leaf hashes kept for pruned records are missing"),
        ("DELETE FROM merkle_nodes WHERE level = 1 AND idx = 1", "tree nodes at level 1 are missing or extra"),
        (
            "UPDATE merkle_nodes SET hash = sha256(hash) WHERE level = 2 AND idx = 1",
            "level 2, index 1 (records 5-8) no",
        ),
        ("UPDATE merkle_nodes SET hash = sha256(hash) WHERE level = 0 AND idx = 2", "level 1, index 1"),
    ],
)
def test_tampering_after_pruning_is_found(dsn: str, signing_key: SigningKey, sql: str, problem: str) -> None:
    _mixed_log(dsn)
    _prune(dsn, signing_key)
    with psycopg.connect(dsn) as conn:
        conn.execute(sql.encode())
    result = _verify(dsn)
    assert not result.ok
    assert problem in result.problem


def test_a_tampered_log_is_not_pruned(dsn: str, signing_key: SigningKey) -> None:
    _mixed_log(dsn)
    with psycopg.connect(dsn) as conn:
        conn.execute("UPDATE audit_log SET actor_id = 'someone-else' WHERE seq = 2")
    with psycopg.connect(dsn) as conn, pytest.raises(PruneRefused, match="at record 2"):
        prune(conn, signing_key, CUTOFF, NOW)
    with psycopg.connect(dsn) as conn:
        assert conn.execute("SELECT count(*) FROM audit_log").fetchone() == (11,)
        assert conn.execute("SELECT count(*) FROM audit_checkpoints").fetchone() == (0,)


def test_the_prune_command_uses_the_retention_setting(dsn: str) -> None:
    append(dsn, [audit_event(occurred_at=datetime.now(UTC) - timedelta(days=400)), audit_event()])
    env = {"TEND_AUDIT_DATABASE_URL": dsn, "PATH": ""}
    kept = subprocess.run(
        [sys.executable, "-m", "tend_audit", "prune"], env=env, capture_output=True, text=True, check=False
    )
    assert kept.returncode == 0, kept.stderr
    assert "nothing to prune" in kept.stdout
    env["TEND_AUDIT_RETENTION_YEARS"] = "1"
    pruned = subprocess.run(
        [sys.executable, "-m", "tend_audit", "prune"], env=env, capture_output=True, text=True, check=False
    )
    assert pruned.returncode == 0, pruned.stderr
    assert "pruned 1 records" in pruned.stdout
    assert _verify(dsn).ok
