"""The fake identity services' tests share: its scripted answers, its record of calls, and its check of the caller."""

from __future__ import annotations

import grpc
import pytest
from tend.identity.v1 import identity_pb2, identity_pb2_grpc

from tend_common.service_auth import ServiceTokenSigner, authenticated_channel, generate_service_key
from tend_testing.fake_identity import FakeIdentity

ENGAGEMENT = identity_pb2.PURPOSE_ENGAGEMENT_SUPPORT


def test_list_visible_students_answers_what_was_shown_and_nothing_else() -> None:
    with FakeIdentity("indicators") as identity, grpc.insecure_channel(identity.target) as channel:
        stub = identity_pb2_grpc.IdentityServiceStub(channel)
        identity.show_students("tutor-1", ENGAGEMENT, ["p_1", "p_2"])
        identity.show_students("dean-1", ENGAGEMENT, ["p_1"], detail=identity_pb2.DETAIL_LEVEL_AGGREGATE)

        def visible(person: str) -> tuple[int, list[str]]:
            request = identity_pb2.ListVisibleStudentsRequest(
                actor_assertion=identity.assertion(person), purpose=ENGAGEMENT
            )
            response = stub.ListVisibleStudents(request)
            return response.detail, [s.pseudonym for s in response.students]

        assert visible("tutor-1") == (identity_pb2.DETAIL_LEVEL_INDIVIDUAL, ["p_1", "p_2"])
        assert visible("dean-1") == (identity_pb2.DETAIL_LEVEL_AGGREGATE, [])
        assert visible("stranger") == (identity_pb2.DETAIL_LEVEL_NONE, [])
        forged = identity_pb2.ListVisibleStudentsRequest(actor_assertion=identity.assertion("x", audience="portal"))
        with pytest.raises(grpc.RpcError) as raised:
            stub.ListVisibleStudents(forged)
        assert raised.value.code() == grpc.StatusCode.UNAUTHENTICATED
        assert [name for name, _ in identity.calls] == ["ListVisibleStudents"] * 4


def test_list_responsible_staff_falls_back_to_default_staff_or_not_found() -> None:
    with FakeIdentity("notify") as identity, grpc.insecure_channel(identity.target) as channel:
        stub = identity_pb2_grpc.IdentityServiceStub(channel)
        identity.responsible["p_1"] = [("tutor-1", "personal_tutor")]

        def staff(pseudonym: str) -> list[tuple[str, str]]:
            response = stub.ListResponsibleStaff(identity_pb2.ListResponsibleStaffRequest(pseudonym=pseudonym))
            return [(s.person_id, s.relationship) for s in response.staff]

        assert staff("p_1") == [("tutor-1", "personal_tutor")]
        with pytest.raises(grpc.RpcError) as raised:
            staff("p_2")
        assert raised.value.code() == grpc.StatusCode.NOT_FOUND
        identity.default_staff = [("lead-1", "programme_lead")]
        assert staff("p_2") == [("lead-1", "programme_lead")]


def test_with_a_caller_only_that_service_credential_is_answered() -> None:
    with FakeIdentity("notify", caller="notify") as identity:
        request = identity_pb2.GetPublicKeysRequest()
        signer = ServiceTokenSigner("notify", identity.service_key)
        with authenticated_channel(identity.target, signer, "identity") as channel:
            keys = identity_pb2_grpc.IdentityServiceStub(channel).GetPublicKeys(request).keys
            assert [key.key_id for key in keys] == [identity.key_id]
        stranger = ServiceTokenSigner("notify", generate_service_key())
        for channel in (
            grpc.insecure_channel(identity.target),
            authenticated_channel(identity.target, stranger, "identity"),
        ):
            with channel, pytest.raises(grpc.RpcError) as raised:
                identity_pb2_grpc.IdentityServiceStub(channel).GetPublicKeys(request)
            assert raised.value.code() == grpc.StatusCode.UNAUTHENTICATED
        assert len(identity.requests("GetPublicKeys")) == 1
