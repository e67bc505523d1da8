"""The tree arithmetic against the RFC 9162 definition, and its proofs against the independent verifier."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from services.audit.tests import rfc9162
from tend_audit.merkle import (
    Frontier,
    Node,
    consistency_ranges,
    frontier_nodes,
    inclusion_ranges,
    nodes_needed,
    range_hashes,
)


def _entries(n: int) -> list[bytes]:
    return [f"entry {i}".encode() for i in range(n)]


def _all_nodes(entries: list[bytes]) -> dict[Node, bytes]:
    """Every perfect subtree, computed by the reference definition rather than by the code under test."""
    nodes: dict[Node, bytes] = {}
    level = 0
    while (1 << level) <= len(entries):
        width = 1 << level
        for index in range(len(entries) // width):
            nodes[Node(level, index)] = rfc9162.tree_hash(entries[index * width : (index + 1) * width])
        level += 1
    return nodes


def test_frontier_root_and_completed_nodes_match_the_definition() -> None:
    entries = _entries(70)
    reference = _all_nodes(entries)
    tree = Frontier()
    completed: dict[Node, bytes] = {}
    for n, entry in enumerate(entries, start=1):
        for level, index, value in tree.append(rfc9162.hash_leaf(entry)):
            completed[Node(level, index)] = value
        assert tree.root() == rfc9162.tree_hash(entries[:n])
        assert tree.hashes == [reference[node] for node in frontier_nodes(n)]
    assert completed == {node: value for node, value in reference.items() if node.level > 0}


def test_empty_tree_root_is_the_hash_of_nothing() -> None:
    assert Frontier().root() == rfc9162.tree_hash([])


def test_a_frontier_of_the_wrong_shape_is_refused() -> None:
    with pytest.raises(ValueError, match="3 frontier hashes"):
        Frontier(7, [b"x" * 32])


@settings(max_examples=300, deadline=None)
@given(st.integers(min_value=1, max_value=140).flatmap(lambda n: st.tuples(st.just(n), st.integers(0, n - 1))))
def test_inclusion_proofs_verify_independently(case: tuple[int, int]) -> None:
    size, leaf = case
    entries = _entries(size)
    ranges = inclusion_ranges(leaf, size)
    path = range_hashes(ranges, _all_nodes(entries))
    root = rfc9162.tree_hash(entries)
    leaf_hash = rfc9162.hash_leaf(entries[leaf])
    assert rfc9162.verify_inclusion(leaf, size, leaf_hash, path, root)
    assert not rfc9162.verify_inclusion(leaf, size, rfc9162.hash_leaf(b"another entry"), path, root)
    if path:
        assert not rfc9162.verify_inclusion(leaf, size, leaf_hash, path[:-1], root)
        assert not rfc9162.verify_inclusion(leaf, size, leaf_hash, [*path[:-1], bytes(32)], root)
    if size > 1:
        assert not rfc9162.verify_inclusion((leaf + 1) % size, size, leaf_hash, path, root)


@settings(max_examples=300, deadline=None)
@given(st.integers(min_value=1, max_value=140).flatmap(lambda n: st.tuples(st.integers(1, n), st.just(n))))
def test_consistency_proofs_verify_independently(case: tuple[int, int]) -> None:
    first, second = case
    entries = _entries(second)
    proof = range_hashes(consistency_ranges(first, second), _all_nodes(entries))
    first_root, second_root = rfc9162.tree_hash(entries[:first]), rfc9162.tree_hash(entries)
    assert rfc9162.verify_consistency(first, second, first_root, second_root, proof)
    forked = rfc9162.tree_hash([*entries[: first - 1], b"rewritten"])
    assert not rfc9162.verify_consistency(first, second, forked, second_root, proof)
    if proof:
        assert not rfc9162.verify_consistency(first, second, first_root, second_root, proof[1:])
        assert not rfc9162.verify_consistency(first, second, first_root, second_root, [bytes(32), *proof[1:]])


def test_proofs_need_only_a_logarithmic_number_of_stored_nodes() -> None:
    size = 1_000_003
    assert len(nodes_needed(inclusion_ranges(123_456, size))) <= 2 * size.bit_length()
    assert len(nodes_needed(consistency_ranges(777_777, size))) <= 2 * size.bit_length()


@pytest.mark.parametrize(("leaf", "size"), [(-1, 4), (4, 4), (0, 0)])
def test_inclusion_outside_the_tree_is_refused(leaf: int, size: int) -> None:
    with pytest.raises(ValueError, match="not in a tree"):
        inclusion_ranges(leaf, size)


@pytest.mark.parametrize(("first", "second"), [(0, 4), (5, 4)])
def test_consistency_between_impossible_sizes_is_refused(first: int, second: int) -> None:
    with pytest.raises(ValueError, match="no consistency proof"):
        consistency_ranges(first, second)
