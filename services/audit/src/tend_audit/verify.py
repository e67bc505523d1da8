"""Recomputes the whole log and names the first record that was changed, removed, inserted or reordered.

One pass in sequence order recomputes each record's leaf hash from its event bytes, checks the queryable columns
against the bytes, recomputes the hash chain and the Merkle tree, and compares the tree's root with every signed tree
head on the way. A record changed together with its stored hashes still breaks the signed head that covers it. Then
the stored tree nodes (from which proofs are served) are checked against their children, and the head row against
the end of the log. After pruning, the pass starts from the latest signed checkpoint.

For a large log a second process checks most record bodies while this one follows the chain and the tree over the
stored hashes; problems are still reported in the order a single pass would meet them.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterator, Mapping
from concurrent.futures import BrokenExecutor, Future, ProcessPoolExecutor
from dataclasses import dataclass
from multiprocessing import get_context
from typing import Any

import psycopg
from google.protobuf.message import DecodeError
from tend.audit.v1 import events_pb2

from tend_audit.chain import GENESIS, chain_hash, leaf_hash
from tend_audit.merkle import Frontier, fold, frontier_nodes
from tend_audit.records import ACTOR_KINDS, OUTCOMES, record_from_body
from tend_audit.signing import checkpoint_message, public_keys, signature_valid, tree_head_message

log = logging.getLogger(__name__)


def _columns_of(body: bytes) -> tuple[object, ...] | None:
    """The queryable columns a valid event body gives (its time in microseconds since the epoch), in the order the
    pass reads them; None when the body is not a valid event. Lean on purpose: it runs once per record."""
    try:
        event = events_pb2.AuditEvent.FromString(body)
    except DecodeError:
        return None
    meta = event.meta
    columns = (
        meta.event_id,
        meta.occurred_at.seconds * 1_000_000 + meta.occurred_at.nanos // 1000,
        ACTOR_KINDS.get(event.actor.kind),
        event.actor.id,
        event.action,
        event.subject.kind,
        event.subject.id,
        event.purpose,
        OUTCOMES.get(event.outcome),
        event.origin_service,
        meta.request_id,
    )
    required = (meta.event_id, event.actor.id, event.action, event.subject.kind, event.subject.id, event.origin_service)
    if not all(required) or not meta.HasField("occurred_at") or None in columns:
        return None
    return columns


def _column_problem(body: bytes) -> str:
    try:
        record_from_body(body)
    except ValueError as exc:
        return f"event body unreadable: {exc}"
    return "a column no longer matches the event body"


@dataclass(frozen=True)
class VerificationResult:
    """`ok`, or the first problem: the first bad record's sequence number (when a record can be named) and what is
    wrong."""

    ok: bool
    records_checked: int
    first_bad_seq: int | None = None
    problem: str = ""
    tree_heads_checked: int = 0
    # Records 1..starts_after were pruned under a signed checkpoint; verification started after them.
    starts_after: int = 0


@dataclass(frozen=True)
class _TreeHead:
    tree_size: int
    root_hash: bytes
    signed_at: Any
    key_id: str
    signature: bytes


# Which of several problems found at the same record a single pass in sequence order meets first.
# Below this many records a second process costs more to start than it saves.
PARALLEL_FROM = 200_000

_GAP, _BODY, _COLUMNS, _CHAIN, _HEAD_ROOT, _HEAD_SIGNATURE, _OTHER = range(7)
_AFTER_THE_RECORDS = 1 << 62


class _Failure(Exception):
    """A problem, the record it names (if any), and where a single pass in sequence order would meet it (`at`, the
    record being read, then `rank`), so that problems found by parallel workers are reported in that order."""

    def __init__(self, seq: int | None, problem: str, at: int = _AFTER_THE_RECORDS, rank: int = _OTHER) -> None:
        super().__init__(problem)
        self.seq = seq
        self.problem = problem
        self.at = at
        self.rank = rank


_FULL_ROWS = (
    "SELECT seq, event_body, leaf_hash, chain_hash, event_id, (extract(epoch FROM occurred_at) * 1000000)::bigint,"
    " actor_kind, actor_id, action, subject_kind, subject_id, purpose, outcome, origin_service, request_id"
    " FROM audit_log"
)
_HASH_ROWS = "SELECT seq, leaf_hash, chain_hash FROM audit_log"


def _fetch(
    conn: psycopg.Connection[Any], select: str, after: int, through: int | None, batch_size: int
) -> Iterator[tuple[Any, ...]]:
    """Rows of `select` for records after `after` (through `through`), in order, in batches from a server cursor."""
    with conn.cursor(name=f"audit_verify_{after}", binary=True) as cur:
        cur.execute(
            select + " WHERE seq > %s AND (%s::bigint IS NULL OR seq <= %s) ORDER BY seq", (after, through, through)
        )
        while rows := cur.fetchmany(batch_size):
            for row in rows:
                yield (row[0], row[1], row[2], row[3], row[4:]) if len(row) > 3 else row


def _check_bodies(dsn: str | None, after: int, batch_size: int) -> tuple[int, int, str] | None:
    """In a worker process: the first record after `after` whose body no longer gives its leaf hash or its columns,
    as (seq, rank, problem); None when all do."""
    assert dsn is not None, "a worker is started only with the database's address"
    with psycopg.connect(dsn) as conn:
        for seq, body, stored_leaf, _chain, columns in _fetch(conn, _FULL_ROWS, after, None, batch_size):
            if leaf_hash(body) != stored_leaf:
                return seq, _BODY, "event body changed"
            if _columns_of(body) != columns:
                return seq, _COLUMNS, _column_problem(body)
    return None


class _Verifier:
    def __init__(
        self,
        conn: psycopg.Connection[Any],
        keys: Mapping[str, bytes],
        batch_size: int,
        dsn: str | None,
        parallel_from: int | None,
    ) -> None:
        self._conn = conn
        self._keys = keys
        self._batch_size = batch_size
        self._dsn = dsn
        self._parallel_from = parallel_from
        self.checked = 0
        self.heads_checked = 0
        self.start = 0
        self._checkpoint_frontier: list[bytes] = []

    def run(self) -> None:
        tree, chained = self._start_from_checkpoint()
        split = self._split()
        # Records after `split` have their bodies checked by a worker process while this one checks the chain and the
        # tree over their stored leaf hashes; a pass over many records then takes about half the time on two cores.
        pool = ProcessPoolExecutor(1, mp_context=get_context("spawn")) if split is not None else None
        try:
            bodies = None
            if pool is not None and split is not None:
                bodies = pool.submit(_check_bodies, self._dsn, split, self._batch_size)
            failures: list[_Failure] = []
            recomputed: dict[int, bytearray] = {}
            try:
                chained = self._pass(tree, chained, split, recomputed)
            except _Failure as failure:
                failures.append(failure)
            found = self._bodies_checked(bodies, split)
            if found is not None:
                failures.append(_Failure(found[0], found[2], at=found[0], rank=found[1]))
        finally:
            if pool is not None:
                pool.shutdown(cancel_futures=True)
        if failures:
            raise min(failures, key=lambda failure: (failure.at, failure.rank))
        end = self.start + self.checked
        self._check_log_head(end, chained, tree)
        self._check_recomputed_nodes(recomputed, end)
        self._check_pruned_nodes()

    def _bodies_checked(
        self, bodies: Future[tuple[int, int, str] | None] | None, split: int | None
    ) -> tuple[int, int, str] | None:
        """The worker's answer; if the worker could not run, the same check done here instead."""
        if bodies is None or split is None:
            return None
        try:
            return bodies.result()
        except (BrokenExecutor, OSError, psycopg.Error) as exc:
            log.warning("body check worker failed; checking here", extra={"fields": {"error": type(exc).__name__}})
            return _check_bodies(self._dsn, split, self._batch_size)

    def _split(self) -> int | None:
        """The record after which a worker checks the bodies, or None to check everything here."""
        if self._dsn is None or self._parallel_from is None:
            return None
        row = self._conn.execute("SELECT seq FROM audit_log_head WHERE id = 1").fetchone()
        records = (int(row[0]) if row else 0) - self.start
        if records < self._parallel_from:
            return None
        # This process also recomputes the chain and the tree for every record: checking the bodies of the first
        # quarter as well evens out the work.
        return self.start + records // 4

    def _pass(self, tree: Frontier, chained: bytes, split: int | None, recomputed: dict[int, bytearray]) -> bytes:
        """Checks every record in sequence order (bodies only up to `split`); returns the chain hash at the end."""
        heads = self._tree_heads_after(self.start)
        next_head = self._next_head(heads, self.start)
        expected_seq = self.start + 1
        for seq, body, stored_leaf, stored_chain, columns in self._rows(split):
            if seq != expected_seq:
                problem = "removed" if seq > expected_seq else "inserted"
                raise _Failure(expected_seq, f"record {expected_seq} {problem}", at=expected_seq, rank=_GAP)
            if body is not None:
                if leaf_hash(body) != stored_leaf:
                    raise _Failure(seq, "event body changed", at=seq, rank=_BODY)
                if _columns_of(body) != columns:
                    raise _Failure(seq, _column_problem(body), at=seq, rank=_COLUMNS)
            chained = chain_hash(chained, stored_leaf)
            if chained != stored_chain:
                raise _Failure(seq, "chain broken (records reordered or replaced)", at=seq, rank=_CHAIN)
            for level, _index, value in tree.append(stored_leaf):
                recomputed.setdefault(level, bytearray()).extend(value)
            while next_head is not None and next_head.tree_size == seq:
                self._check_head_root(next_head, tree.root())
                next_head = self._next_head(heads, seq)
            expected_seq += 1
            self.checked += 1
        if next_head is not None:
            end = self.start + self.checked
            raise _Failure(
                end + 1, f"records removed from the end of the log (a signed tree head covers {next_head.tree_size})"
            )
        return chained

    def _next_head(self, heads: Iterator[_TreeHead], at: int) -> _TreeHead | None:
        try:
            return next(heads, None)
        except _Failure as failure:
            failure.at, failure.rank = at, _HEAD_SIGNATURE
            raise

    def _start_from_checkpoint(self) -> tuple[Frontier, bytes]:
        row = self._conn.execute(
            "SELECT tree_size, root_hash, chain_hash, frontier, signed_at, key_id, signature FROM audit_checkpoints"
            " ORDER BY tree_size DESC LIMIT 1"
        ).fetchone()
        if row is None:
            return Frontier(), GENESIS
        size, root, chained = int(row[0]), bytes(row[1]), bytes(row[2])
        frontier, signed_at, key_id, signature = row[3], row[4], str(row[5]), bytes(row[6])
        hashes = [bytes(h) for h in frontier]
        message = checkpoint_message(size, root, chained, hashes, signed_at)
        if not self._signed(key_id, signature, message):
            raise _Failure(None, f"the checkpoint at {size} records is not signed by audit's key")
        if len(hashes) != bin(size).count("1") or fold(hashes) != root:
            raise _Failure(None, f"the checkpoint at {size} records does not add up to its root")
        self.start = size
        self._checkpoint_frontier = hashes
        return Frontier(size, hashes), chained

    def _tree_heads_after(self, start: int) -> Iterator[_TreeHead]:
        rows = self._conn.execute(
            "SELECT tree_size, root_hash, signed_at, key_id, signature FROM signed_tree_heads"
            " WHERE tree_size >= %s ORDER BY tree_size",
            (start,),
        ).fetchall()
        for size, root, signed_at, key_id, signature in rows:
            head = _TreeHead(int(size), bytes(root), signed_at, str(key_id), bytes(signature))
            if not self._signed(head.key_id, head.signature, tree_head_message(head.tree_size, root, signed_at)):
                raise _Failure(None, f"the signed tree head at {head.tree_size} records has a bad signature")
            if head.tree_size == start:
                self._check_head_root(head, self._checkpoint_root(start))
                continue
            yield head

    def _checkpoint_root(self, size: int) -> bytes:
        row = self._conn.execute("SELECT root_hash FROM audit_checkpoints WHERE tree_size = %s", (size,)).fetchone()
        return bytes(row[0]) if row else b""

    def _check_head_root(self, head: _TreeHead, root: bytes) -> None:
        if root != head.root_hash:
            previous = self._previous_good_size(head.tree_size)
            raise _Failure(
                previous + 1,
                at=head.tree_size,
                rank=_HEAD_ROOT,
                problem=f"the log no longer matches the signed tree head at {head.tree_size} records: a record from"
                f" {previous + 1} to {head.tree_size} was changed, removed, inserted or reordered with its hashes",
            )
        self.heads_checked += 1

    def _previous_good_size(self, size: int) -> int:
        row = self._conn.execute(
            "SELECT max(tree_size) FROM signed_tree_heads WHERE tree_size < %s AND tree_size >= %s", (size, self.start)
        ).fetchone()
        return int(row[0]) if row and row[0] is not None else self.start

    def _signed(self, key_id: str, signature: bytes, message: bytes) -> bool:
        public = self._keys.get(key_id)
        return public is not None and signature_valid(public, signature, message)

    def _rows(self, split: int | None) -> Iterator[tuple[int, bytes | None, bytes, bytes, tuple[object, ...]]]:
        """Every record in order: whole up to `split` (all, when None), and after it only its stored hashes."""
        yield from _fetch(self._conn, _FULL_ROWS, self.start, split, self._batch_size)
        if split is not None:
            for seq, stored_leaf, stored_chain in _fetch(self._conn, _HASH_ROWS, split, None, self._batch_size):
                yield seq, None, stored_leaf, stored_chain, ()

    def _check_log_head(self, end: int, chained: bytes, tree: Frontier) -> None:
        row = self._conn.execute(
            "SELECT seq, chain_hash, frontier, root_hash FROM audit_log_head WHERE id = 1"
        ).fetchone()
        if row is None or int(row[0]) != end or bytes(row[1]) != chained:
            raise _Failure(end + 1, "records removed from the end of the log")
        if [bytes(h) for h in row[2]] != tree.hashes or bytes(row[3]) != tree.root():
            raise _Failure(None, "the log head's tree does not match the records")

    def _check_recomputed_nodes(self, recomputed: dict[int, bytearray], size: int) -> None:
        """The stored interior nodes completed after the checkpoint are exactly the recomputed ones."""
        rows = self._conn.execute(
            "SELECT level, count(*), sha256(string_agg(hash, ''::bytea ORDER BY idx)) FROM merkle_nodes"
            " WHERE level >= 1 AND ((idx + 1) << level::integer) > %s GROUP BY level",
            (self.start,),
        ).fetchall()
        stored = {int(level): (int(count), bytes(digest)) for level, count, digest in rows}
        for level in sorted(set(stored) | set(recomputed)):
            values = bytes(recomputed.get(level, b""))
            if stored.get(level) != (len(values) // 32, hashlib.sha256(values).digest()):
                raise _Failure(None, self._first_bad_node(level, values))

    def _first_bad_node(self, level: int, values: bytes) -> str:
        """Names the first stored node of `level` that differs from the recomputed ones (the slow path, on failure)."""
        expected_first = self.start >> level  # the first node that completes after the checkpoint
        rows = self._conn.execute(
            "SELECT idx, hash FROM merkle_nodes WHERE level = %s AND ((idx + 1) << level::integer) > %s ORDER BY idx",
            (level, self.start),
        ).fetchall()
        expected = [values[i : i + 32] for i in range(0, len(values), 32)]
        for position in range(max(len(rows), len(expected))):
            index = expected_first + position
            stored_index = int(rows[position][0]) if position < len(rows) else None
            if position >= len(expected) or (stored_index is not None and stored_index < index):
                return f"tree node at level {level}, index {stored_index} is beyond the records"
            first, last = (index << level) + 1, (index + 1) << level
            if stored_index is None or stored_index > index:
                return f"tree node at level {level}, index {index} (records {first}-{last}) is missing"
            if bytes(rows[position][1]) != expected[position]:
                return (
                    f"tree node at level {level}, index {index} (records {first}-{last}) no longer matches the"
                    " records under it"
                )
        return f"tree nodes at level {level} do not match the records"

    def _check_pruned_nodes(self) -> None:
        """Within the pruned prefix no record is left to recompute from: the stored nodes there must be complete,
        each the hash of its children, and the checkpoint's frontier (which its signature covers) must be theirs."""
        extra = self._conn.execute(
            "SELECT idx FROM merkle_nodes WHERE level = 0 AND idx >= %s ORDER BY idx LIMIT 1", (self.start,)
        ).fetchone()
        if extra is not None:
            raise _Failure(int(extra[0]) + 1, "a leaf hash is kept apart for a record that was not pruned")
        if self.start == 0:
            return
        counts = dict(
            self._conn.execute(
                "SELECT level, count(*) FROM merkle_nodes WHERE ((idx + 1) << level::integer) <= %s GROUP BY level",
                (self.start,),
            ).fetchall()
        )
        for level in range(self.start.bit_length()):
            if int(counts.get(level, 0)) != self.start >> level:
                what = "the leaf hashes kept for pruned records" if level == 0 else f"tree nodes at level {level}"
                raise _Failure(None, f"{what} are missing or extra")
        bad = self._conn.execute(
            "SELECT n.level, n.idx FROM merkle_nodes n"
            " LEFT JOIN merkle_nodes l ON l.level = n.level - 1 AND l.idx = 2 * n.idx"
            " LEFT JOIN merkle_nodes r ON r.level = n.level - 1 AND r.idx = 2 * n.idx + 1"
            " WHERE n.level >= 1 AND ((n.idx + 1) << n.level::integer) <= %(start)s"
            " AND (l.hash IS NULL OR r.hash IS NULL OR n.hash <> sha256('\\x01'::bytea || l.hash || r.hash))"
            " ORDER BY n.level, n.idx LIMIT 1",
            {"start": self.start},
        ).fetchone()
        if bad is not None:
            level, index = int(bad[0]), int(bad[1])
            first, last = (index << level) + 1, (index + 1) << level
            raise _Failure(
                None,
                f"tree node at level {level}, index {index} (records {first}-{last}) no longer matches the records"
                " under it",
            )
        nodes = frontier_nodes(self.start)
        stored = {
            (int(level), int(index)): bytes(value)
            for level, index, value in self._conn.execute(
                "SELECT n.level, n.idx, n.hash FROM merkle_nodes n"
                " JOIN unnest(%s::smallint[], %s::bigint[]) AS w(level, idx) ON n.level = w.level AND n.idx = w.idx",
                ([n.level for n in nodes], [n.index for n in nodes]),
            ).fetchall()
        }
        if [stored.get((n.level, n.index)) for n in nodes] != self._checkpoint_frontier:
            raise _Failure(None, f"the tree nodes under the checkpoint at {self.start} records do not match it")


def verify_log(
    conn: psycopg.Connection[Any],
    trusted_keys: Mapping[str, bytes] | None = None,
    batch_size: int = 10_000,
    dsn: str | None = None,
    parallel_from: int | None = PARALLEL_FROM,
) -> VerificationResult:
    """Verifies the log; signatures are checked against `trusted_keys` (key id -> raw Ed25519 public key), by
    default the keys audit recorded in its own database. Given the database's `dsn`, a log of at least
    `parallel_from` records has most record bodies checked by a second process."""
    keys = public_keys(conn) if trusted_keys is None else trusted_keys
    verifier = _Verifier(conn, keys, batch_size, dsn, parallel_from)
    try:
        verifier.run()
    except _Failure as failure:
        return VerificationResult(
            False, verifier.checked, failure.seq, failure.problem, verifier.heads_checked, verifier.start
        )
    finally:
        conn.rollback()
    return VerificationResult(True, verifier.checked, None, "", verifier.heads_checked, verifier.start)
