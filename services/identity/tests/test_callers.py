"""The calling-service table for identity's methods: complete, and checkin never reaches a method that reveals who a
student is."""

from __future__ import annotations

from tend.identity.v1 import identity_pb2

from tend_identity.callers import CALLERS, METHOD_POLICY, SERVICE_NAME

REVEALING = (
    "ListVisibleStudents", "ResolvePseudonyms", "MapToPseudonyms", "GetContactDetails", "GetSession", "FindPerson"
)  # fmt: skip


def test_every_method_of_the_service_is_in_the_table() -> None:
    declared = {method.name for method in identity_pb2.DESCRIPTOR.services_by_name["IdentityService"].methods}

    assert set(CALLERS) == declared


def test_checkin_may_not_learn_who_a_student_is() -> None:
    for method in REVEALING:
        assert not METHOD_POLICY.permits(f"/{SERVICE_NAME}/{method}", "checkin"), method
    assert METHOD_POLICY.permits(f"/{SERVICE_NAME}/CheckAccess", "checkin")
    assert METHOD_POLICY.permits(f"/{SERVICE_NAME}/GetPublicKeys", "checkin")


def test_only_notify_reads_contact_details() -> None:
    allowed = {
        s
        for s in ("portal", "checkin", "indicators", "notify", "audit")
        if METHOD_POLICY.permits(f"/{SERVICE_NAME}/GetContactDetails", s)
    }
    assert allowed == {"notify"}


def test_only_the_portal_finds_people_by_number() -> None:
    allowed = {
        s
        for s in ("portal", "checkin", "indicators", "notify", "audit")
        if METHOD_POLICY.permits(f"/{SERVICE_NAME}/FindPerson", s)
    }
    assert allowed == {"portal"}
