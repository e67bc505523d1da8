"""Which Tend services may call which of audit's methods."""

from __future__ import annotations

import pytest
from tend.audit.v1 import audit_pb2

from tend_audit.grpc_api import SERVICE_NAME
from tend_audit.service import METHOD_POLICY

ALL_METHODS = [method.name for method in audit_pb2.DESCRIPTOR.services_by_name["AuditService"].methods]
OTHER_SERVICES = ["identity", "checkin", "indicators", "notify"]


@pytest.mark.parametrize("method", ["GetSignedTreeHead", "GetPublicKeys", "GetInclusionProof", "GetConsistencyProof"])
@pytest.mark.parametrize("caller", ["portal", *OTHER_SERVICES])
def test_every_service_may_check_the_log(method: str, caller: str) -> None:
    assert METHOD_POLICY.permits(f"/{SERVICE_NAME}/{method}", caller)


@pytest.mark.parametrize("method", ["QueryRecords", "ExportRecords"])
@pytest.mark.parametrize("caller", OTHER_SERVICES)
def test_only_the_portal_may_ask_who_accessed_whom(method: str, caller: str) -> None:
    assert METHOD_POLICY.permits(f"/{SERVICE_NAME}/{method}", "portal")
    assert not METHOD_POLICY.permits(f"/{SERVICE_NAME}/{method}", caller)


def test_every_method_has_a_rule() -> None:
    assert sorted(ALL_METHODS) == sorted(name.rsplit("/", 1)[1] for name in METHOD_POLICY.allowed)
