"""Fetches identity's public verification keys over gRPC, for a TokenVerifier."""

from __future__ import annotations

from collections.abc import Mapping

import grpc
from tend.identity.v1 import identity_pb2, identity_pb2_grpc

from tend_common.tokens import KeyFetcher


def identity_key_fetcher(channel: grpc.Channel, timeout: float = 5.0) -> KeyFetcher:
    """A KeyFetcher that asks identity for its current and recently retired keys."""
    stub = identity_pb2_grpc.IdentityServiceStub(channel)

    def fetch() -> Mapping[str, bytes]:
        response = stub.GetPublicKeys(identity_pb2.GetPublicKeysRequest(), timeout=timeout)
        return {key.key_id: key.public_key for key in response.keys}

    return fetch
