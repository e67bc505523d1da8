"""Signed tree heads, keys and proofs served over gRPC, each checked by the independent RFC 9162 verifier and by a
plain Ed25519 signature check written here, not by the service's own code."""

from __future__ import annotations

import struct

import grpc
import psycopg
import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from tend.audit.v1 import audit_pb2

from services.audit.tests import rfc9162
from services.audit.tests.conftest import Api
from services.audit.tests.helpers import append_many


def _bodies(dsn: str) -> list[bytes]:
    with psycopg.connect(dsn) as conn:
        return [bytes(row[0]) for row in conn.execute("SELECT event_body FROM audit_log ORDER BY seq")]


def _event_id(dsn: str, seq: int) -> str:
    with psycopg.connect(dsn) as conn:
        row = conn.execute("SELECT event_id FROM audit_log WHERE seq = %s", (seq,)).fetchone()
    assert row is not None
    return str(row[0])


def _sign_now(api: Api) -> audit_pb2.SignedTreeHead:
    head: audit_pb2.SignedTreeHead = api.stub.GetSignedTreeHead(
        audit_pb2.GetSignedTreeHeadRequest(sign_now=True)
    ).tree_head
    return head


def _check_signature(api: Api, head: audit_pb2.SignedTreeHead) -> None:
    """The signature over the documented bytes, with the published key."""
    keys = {k.key_id: k.public_key for k in api.stub.GetPublicKeys(audit_pb2.GetPublicKeysRequest()).keys}
    millis = head.signed_at.seconds * 1000 + head.signed_at.nanos // 1_000_000
    message = b"tend-audit-tree-head-v1\n" + struct.pack(">QQ", head.tree_size, millis) + head.root_hash
    Ed25519PublicKey.from_public_bytes(keys[head.key_id]).verify(head.signature, message)
    with pytest.raises(InvalidSignature):
        Ed25519PublicKey.from_public_bytes(keys[head.key_id]).verify(head.signature, message[:-1] + b"\x00")


def test_an_empty_log_has_no_tree_head(api: Api) -> None:
    response = api.stub.GetSignedTreeHead(audit_pb2.GetSignedTreeHeadRequest(sign_now=True))
    assert not response.HasField("tree_head")


def test_signed_tree_head_is_the_rfc_9162_root_and_verifies_with_the_published_key(api: Api) -> None:
    append_many(api.dsn, 13)
    head = _sign_now(api)
    assert head.tree_size == 13
    assert head.root_hash == rfc9162.tree_hash(_bodies(api.dsn))
    _check_signature(api, head)
    assert api.stub.GetSignedTreeHead(audit_pb2.GetSignedTreeHeadRequest()).tree_head == head


def test_inclusion_proof_of_every_record_verifies_independently(api: Api) -> None:
    append_many(api.dsn, 21)
    head = _sign_now(api)
    bodies = _bodies(api.dsn)
    for seq in range(1, 22):
        proof = api.stub.GetInclusionProof(audit_pb2.GetInclusionProofRequest(event_id=_event_id(api.dsn, seq)))
        assert proof.leaf_index == seq - 1
        assert proof.tree_head == head
        leaf = rfc9162.hash_leaf(bodies[seq - 1])
        path = list(proof.audit_path)
        assert rfc9162.verify_inclusion(proof.leaf_index, head.tree_size, leaf, path, head.root_hash)
        # Negative cases: another record's bytes, a changed path, the wrong position, a shorter path.
        other = rfc9162.hash_leaf(bodies[seq % 21])
        assert not rfc9162.verify_inclusion(proof.leaf_index, head.tree_size, other, path, head.root_hash)
        assert not rfc9162.verify_inclusion(
            proof.leaf_index, head.tree_size, leaf, [bytes(32), *path[1:]], head.root_hash
        )
        assert not rfc9162.verify_inclusion((seq % 21), head.tree_size, leaf, path, head.root_hash)
        assert not rfc9162.verify_inclusion(proof.leaf_index, head.tree_size, leaf, path[:-1], head.root_hash)


def test_inclusion_proof_in_an_older_signed_head(api: Api) -> None:
    append_many(api.dsn, 6)
    old = _sign_now(api)
    append_many(api.dsn, 9)
    _sign_now(api)
    proof = api.stub.GetInclusionProof(audit_pb2.GetInclusionProofRequest(leaf_index=4, tree_size=6))
    assert proof.tree_head == old
    leaf = rfc9162.hash_leaf(_bodies(api.dsn)[4])
    assert rfc9162.verify_inclusion(4, 6, leaf, list(proof.audit_path), old.root_hash)


def test_consistency_proofs_between_signed_heads_verify_independently(api: Api) -> None:
    heads = []
    for batch in (1, 2, 4, 3, 7, 16, 5):
        append_many(api.dsn, batch)
        heads.append(_sign_now(api))
    for i, first in enumerate(heads):
        for second in heads[i:]:
            response = api.stub.GetConsistencyProof(
                audit_pb2.GetConsistencyProofRequest(first_tree_size=first.tree_size, second_tree_size=second.tree_size)
            )
            proof = list(response.proof)
            args = (first.tree_size, second.tree_size)
            assert rfc9162.verify_consistency(*args, first.root_hash, second.root_hash, proof)
            if first.tree_size != second.tree_size:
                assert not rfc9162.verify_consistency(*args, second.root_hash, second.root_hash, proof)
                assert not rfc9162.verify_consistency(*args, first.root_hash, first.root_hash, proof)
                assert not rfc9162.verify_consistency(*args, first.root_hash, second.root_hash, proof[:-1])


def test_latest_head_is_the_default_second_size(api: Api) -> None:
    append_many(api.dsn, 3)
    first = _sign_now(api)
    append_many(api.dsn, 4)
    latest = _sign_now(api)
    response = api.stub.GetConsistencyProof(audit_pb2.GetConsistencyProofRequest(first_tree_size=3))
    assert response.first == first
    assert response.second == latest
    assert rfc9162.verify_consistency(3, 7, first.root_hash, latest.root_hash, list(response.proof))


def test_bad_proof_requests_are_refused_clearly(api: Api) -> None:
    append_many(api.dsn, 5)
    _sign_now(api)
    code = grpc.StatusCode
    inclusion: list[tuple[audit_pb2.GetInclusionProofRequest, grpc.StatusCode, str]] = [
        (audit_pb2.GetInclusionProofRequest(), code.INVALID_ARGUMENT, "event_id or leaf_index"),
        (audit_pb2.GetInclusionProofRequest(event_id="nope"), code.NOT_FOUND, "no record"),
        (audit_pb2.GetInclusionProofRequest(leaf_index=5), code.OUT_OF_RANGE, "not in the signed tree"),
        (audit_pb2.GetInclusionProofRequest(leaf_index=0, tree_size=4), code.NOT_FOUND, "no signed tree"),
    ]
    consistency: list[tuple[audit_pb2.GetConsistencyProofRequest, grpc.StatusCode, str]] = [
        (audit_pb2.GetConsistencyProofRequest(), code.INVALID_ARGUMENT, "first_tree_size is required"),
        (
            audit_pb2.GetConsistencyProofRequest(first_tree_size=5, second_tree_size=2),
            code.NOT_FOUND,
            "no signed tree head of 2",
        ),
    ]
    for request, expected, message in [*inclusion, *consistency]:
        method = (
            api.stub.GetInclusionProof
            if isinstance(request, audit_pb2.GetInclusionProofRequest)
            else (api.stub.GetConsistencyProof)
        )
        with pytest.raises(grpc.RpcError) as failure:
            method(request)
        assert failure.value.code() == expected, message
        assert message in (failure.value.details() or "")
