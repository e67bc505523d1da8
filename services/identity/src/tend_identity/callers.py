"""Which calling services may use which of identity's methods: the table service-to-service authentication
(tend_common.service_auth.MethodPolicy) enforces once identity's server installs the interceptor. Checkin, which
must never learn who a student is, gets only what opening sessions and verifying tokens need."""

from __future__ import annotations

from collections.abc import Mapping

from tend.identity.v1 import identity_pb2

from tend_common.service_auth import MethodPolicy

SERVICE_NAME: str = identity_pb2.DESCRIPTOR.services_by_name["IdentityService"].full_name
EVERY_SERVICE = frozenset({"portal", "checkin", "indicators", "notify", "audit"})

CALLERS: Mapping[str, frozenset[str]] = {
    # Sign-in, sessions and preferences: the portal, for the person at the browser.
    "SignIn": frozenset({"portal"}),
    "StartOidcSignIn": frozenset({"portal"}),
    "FinishOidcSignIn": frozenset({"portal"}),
    "GetSession": frozenset({"portal"}),
    "SignOut": frozenset({"portal"}),
    "SignOutEverywhere": frozenset({"portal"}),
    "IssueCheckinToken": frozenset({"portal"}),
    "GetPreferences": frozenset({"portal"}),
    "SetPreferences": frozenset({"portal"}),
    # Verifying what identity signs, and asking it to decide: every service.
    "GetPublicKeys": EVERY_SERVICE,
    "CheckAccess": EVERY_SERVICE,
    "ListTeachingModuleRuns": frozenset({"portal", "checkin"}),
    # Anything that reveals who a student is: never checkin.
    "ListVisibleStudents": frozenset({"portal", "indicators"}),
    "ResolvePseudonyms": frozenset({"portal", "indicators", "notify"}),
    "MapToPseudonyms": frozenset({"portal", "indicators"}),
    "ListResponsibleStaff": frozenset({"indicators", "notify"}),
    "GetContactDetails": frozenset({"notify"}),
    # Break-glass and module management: people through the portal.
    "RequestBreakGlass": frozenset({"portal"}),
    "ListBreakGlassGrants": frozenset({"portal"}),
    "CreateModule": frozenset({"portal"}),
    "UpdateModule": frozenset({"portal"}),
    "DeleteModule": frozenset({"portal"}),
    "RestoreModule": frozenset({"portal"}),
    "ListModules": frozenset({"portal"}),
    # The data protection officer's audit search, through the portal.
    "FindPerson": frozenset({"portal"}),
}

METHOD_POLICY = MethodPolicy({f"/{SERVICE_NAME}/{method}": callers for method, callers in CALLERS.items()})
