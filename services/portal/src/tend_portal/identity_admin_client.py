"""Identity's calls behind the sign-in by OpenID Connect, "sign out everywhere", break-glass, module management and
the audit search's look-up of a person by student or staff number.

Kept apart from clients.py so these pages add files rather than change shared ones; failures map to the same
ServiceCallError messages, never echoing remote details. Identity decides every right; the portal only asks.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from datetime import datetime
from typing import Protocol

import grpc
from google.protobuf.timestamp_pb2 import Timestamp
from tend.identity.v1 import identity_pb2, identity_pb2_grpc

from tend_portal.clients import SignedIn, _datetime, _optional_datetime, _person
from tend_portal.grpc_calls import ErrorsByCode, ServiceCallError, call


class OidcNotConfigured(ServiceCallError):
    """Identity has no OpenID Connect provider configured (FAILED_PRECONDITION)."""

    message = "Signing in with your institution's account is not available. Sign in with your Tend password."
    http_status = 503


# Either answer means identity offers no OpenID Connect sign-in here; the page offers the password instead.
_OIDC_ERRORS: ErrorsByCode = {
    grpc.StatusCode.FAILED_PRECONDITION: OidcNotConfigured,
    grpc.StatusCode.UNIMPLEMENTED: OidcNotConfigured,
}


class ModuleCodeTaken(ServiceCallError):
    """Another module already has the code asked for (ALREADY_EXISTS)."""

    message = "Another module already has this code. Choose a different code."
    http_status = 409


_CREATE_MODULE_ERRORS: ErrorsByCode = {grpc.StatusCode.ALREADY_EXISTS: ModuleCodeTaken}


@dataclasses.dataclass(frozen=True)
class OidcStart:
    authorization_url: str
    state: str


@dataclasses.dataclass(frozen=True)
class BreakGlassGrant:
    grant_id: str
    staff_person_id: str
    student_person_id: str
    reason: str
    granted_at: datetime
    expires_at: datetime


@dataclasses.dataclass(frozen=True)
class Module:
    module_id: str
    school_id: str
    code: str
    title: str
    deleted: bool


@dataclasses.dataclass(frozen=True)
class School:
    school_id: str
    code: str
    name: str


@dataclasses.dataclass(frozen=True)
class ManagedModule:
    """A module the person may manage, and what identity's policy lets them do to it now."""

    module: Module
    school: School
    # Academic year and term of each run, for example "2026/27 autumn".
    terms: tuple[str, ...]
    allowed_actions: frozenset[str]

    def allows(self, action: str) -> bool:
        return action in self.allowed_actions


@dataclasses.dataclass(frozen=True)
class ManageableModules:
    modules: list[ManagedModule]
    # Where the person may create modules.
    schools_for_new_modules: list[School]


@dataclasses.dataclass(frozen=True)
class FoundPerson:
    """Who a student or staff number names: the id audit records use, and a name to show the person asking."""

    person_id: str
    display_name: str


class IdentityAdminApi(Protocol):
    def start_oidc_sign_in(self, redirect_uri: str) -> OidcStart: ...
    def finish_oidc_sign_in(self, state: str, code: str) -> SignedIn: ...
    def sign_out_everywhere(self, session_token: str) -> int: ...
    def pseudonyms_of_student_numbers(self, student_numbers: Sequence[str]) -> dict[str, str]: ...
    def request_break_glass(self, actor_assertion: str, student: str, reason: str) -> BreakGlassGrant: ...
    def list_break_glass_grants(self, actor_assertion: str, since: datetime | None) -> list[BreakGlassGrant]: ...
    def create_module(self, actor_assertion: str, school_id: str, code: str, title: str) -> Module: ...
    def update_module(self, actor_assertion: str, module_id: str, title: str) -> Module: ...
    def delete_module(self, actor_assertion: str, module_id: str) -> Module: ...
    def restore_module(self, actor_assertion: str, module_id: str) -> Module: ...
    def list_modules(self, actor_assertion: str) -> ManageableModules: ...
    def find_person(self, actor_assertion: str, identifier: str) -> FoundPerson: ...


def _grant(message: identity_pb2.BreakGlassGrant) -> BreakGlassGrant:
    return BreakGlassGrant(
        grant_id=message.grant_id,
        staff_person_id=message.staff_person_id,
        student_person_id=message.student_person_id,
        reason=message.reason,
        granted_at=_datetime(message.granted_at),
        expires_at=_datetime(message.expires_at),
    )


def _module(message: identity_pb2.Module) -> Module:
    return Module(
        module_id=message.module_id,
        school_id=message.school_id,
        code=message.code,
        title=message.title,
        deleted=message.deleted,
    )


def _school(message: identity_pb2.School) -> School:
    return School(school_id=message.school_id, code=message.code, name=message.name)


def _managed_module(message: identity_pb2.ManagedModule) -> ManagedModule:
    return ManagedModule(
        module=_module(message.module),
        school=_school(message.school),
        terms=tuple(run.term for run in message.runs),
        allowed_actions=frozenset(message.allowed_actions),
    )


class IdentityAdminClient:
    """Identity's gRPC service, for the calls above, over the app's one channel to identity (see channels.py)."""

    def __init__(self, channel: grpc.Channel, timeout_seconds: float = 5.0) -> None:
        self._stub = identity_pb2_grpc.IdentityServiceStub(channel)
        self._timeout = timeout_seconds

    def start_oidc_sign_in(self, redirect_uri: str) -> OidcStart:
        request = identity_pb2.StartOidcSignInRequest(redirect_uri=redirect_uri)
        response = call("StartOidcSignIn", self._stub.StartOidcSignIn, request, self._timeout, errors=_OIDC_ERRORS)
        return OidcStart(authorization_url=response.authorization_url, state=response.state)

    def finish_oidc_sign_in(self, state: str, code: str) -> SignedIn:
        request = identity_pb2.FinishOidcSignInRequest(state=state, code=code)
        response = call("FinishOidcSignIn", self._stub.FinishOidcSignIn, request, self._timeout, errors=_OIDC_ERRORS)
        return SignedIn(
            session_token=response.session_token,
            person=_person(response.person),
            expires_at=_optional_datetime(response.expires_at),
        )

    def sign_out_everywhere(self, session_token: str) -> int:
        request = identity_pb2.SignOutEverywhereRequest(session_token=session_token)
        response = call("SignOutEverywhere", self._stub.SignOutEverywhere, request, self._timeout)
        return int(response.revoked)

    def pseudonyms_of_student_numbers(self, student_numbers: Sequence[str]) -> dict[str, str]:
        """Student number to pseudonym, for the numbers identity knows; unknown numbers are absent."""
        request = identity_pb2.MapToPseudonymsRequest(
            kind=identity_pb2.IDENTIFIER_KIND_STUDENT_NUMBER, identifiers=list(student_numbers)
        )
        response = call("MapToPseudonyms", self._stub.MapToPseudonyms, request, self._timeout)
        return dict(response.pseudonyms)

    def request_break_glass(self, actor_assertion: str, student: str, reason: str) -> BreakGlassGrant:
        request = identity_pb2.RequestBreakGlassRequest(actor_assertion=actor_assertion, student=student, reason=reason)
        response = call("RequestBreakGlass", self._stub.RequestBreakGlass, request, self._timeout)
        return _grant(response.grant)

    def list_break_glass_grants(self, actor_assertion: str, since: datetime | None) -> list[BreakGlassGrant]:
        request = identity_pb2.ListBreakGlassGrantsRequest(actor_assertion=actor_assertion)
        if since is not None:
            stamp = Timestamp()
            stamp.FromDatetime(since)
            request.since.CopyFrom(stamp)
        response = call("ListBreakGlassGrants", self._stub.ListBreakGlassGrants, request, self._timeout)
        return [_grant(grant) for grant in response.grants]

    def create_module(self, actor_assertion: str, school_id: str, code: str, title: str) -> Module:
        request = identity_pb2.CreateModuleRequest(
            actor_assertion=actor_assertion, school_id=school_id, code=code, title=title
        )
        response = call("CreateModule", self._stub.CreateModule, request, self._timeout, errors=_CREATE_MODULE_ERRORS)
        return _module(response.module)

    def update_module(self, actor_assertion: str, module_id: str, title: str) -> Module:
        request = identity_pb2.UpdateModuleRequest(actor_assertion=actor_assertion, module_id=module_id, title=title)
        response = call("UpdateModule", self._stub.UpdateModule, request, self._timeout)
        return _module(response.module)

    def delete_module(self, actor_assertion: str, module_id: str) -> Module:
        request = identity_pb2.ModuleActionRequest(actor_assertion=actor_assertion, module_id=module_id)
        response = call("DeleteModule", self._stub.DeleteModule, request, self._timeout)
        return _module(response.module)

    def restore_module(self, actor_assertion: str, module_id: str) -> Module:
        request = identity_pb2.ModuleActionRequest(actor_assertion=actor_assertion, module_id=module_id)
        response = call("RestoreModule", self._stub.RestoreModule, request, self._timeout)
        return _module(response.module)

    def list_modules(self, actor_assertion: str) -> ManageableModules:
        request = identity_pb2.ListModulesRequest(actor_assertion=actor_assertion)
        response = call("ListModules", self._stub.ListModules, request, self._timeout)
        return ManageableModules(
            modules=[_managed_module(module) for module in response.modules],
            schools_for_new_modules=[_school(school) for school in response.schools_for_new_modules],
        )

    def find_person(self, actor_assertion: str, identifier: str) -> FoundPerson:
        """NotFound when nobody has the number; PermissionDenied when identity will not say (to anyone but the data
        protection officer, whether the number exists or not)."""
        request = identity_pb2.FindPersonRequest(actor_assertion=actor_assertion, identifier=identifier)
        response = call("FindPerson", self._stub.FindPerson, request, self._timeout)
        return FoundPerson(person_id=response.person_id, display_name=response.display_name)
