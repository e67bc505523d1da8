"""Translations between identity's domain values and its protobuf messages."""

from __future__ import annotations

from tend.identity.v1 import identity_pb2

from tend_common.messaging.envelope import timestamp
from tend_identity.disclosure import ShownStudent
from tend_identity.model import ModuleRunSummary, Person, PersonKind
from tend_identity.modules import ManageableModule
from tend_identity.policy import Detail, Purpose
from tend_identity.preferences import LandingPage, Preferences
from tend_identity.pseudonym_mapping import IdentifierKind
from tend_identity.store.break_glass import StoredGrant
from tend_identity.store.organisation import StoredModule, StoredSchool

_PERSON_KINDS = {PersonKind.STUDENT: identity_pb2.PERSON_KIND_STUDENT, PersonKind.STAFF: identity_pb2.PERSON_KIND_STAFF}
PURPOSES = {
    identity_pb2.PURPOSE_ATTENDANCE_CORRECTION: Purpose.ATTENDANCE_CORRECTION,
    identity_pb2.PURPOSE_ENGAGEMENT_SUPPORT: Purpose.ENGAGEMENT_SUPPORT,
    identity_pb2.PURPOSE_VISA_COMPLIANCE: Purpose.VISA_COMPLIANCE,
    identity_pb2.PURPOSE_COHORT_PATTERNS: Purpose.COHORT_PATTERNS,
}
DETAILS = {
    Detail.NONE: identity_pb2.DETAIL_LEVEL_NONE,
    Detail.AGGREGATE: identity_pb2.DETAIL_LEVEL_AGGREGATE,
    Detail.INDIVIDUAL: identity_pb2.DETAIL_LEVEL_INDIVIDUAL,
}
IDENTIFIER_KINDS = {
    identity_pb2.IDENTIFIER_KIND_STUDENT_NUMBER: IdentifierKind.STUDENT_NUMBER,
    identity_pb2.IDENTIFIER_KIND_EMAIL: IdentifierKind.EMAIL,
    identity_pb2.IDENTIFIER_KIND_USERNAME: IdentifierKind.USERNAME,
    identity_pb2.IDENTIFIER_KIND_OULAD_ID: IdentifierKind.OULAD_ID,
}
_LANDING_PAGES = {
    LandingPage.ACTIONS: identity_pb2.LANDING_PAGE_ACTIONS,
    LandingPage.OVERVIEW: identity_pb2.LANDING_PAGE_OVERVIEW,
}
LANDING_PAGES_IN = {
    identity_pb2.LANDING_PAGE_UNSPECIFIED: LandingPage.ACTIONS,
    identity_pb2.LANDING_PAGE_ACTIONS: LandingPage.ACTIONS,
    identity_pb2.LANDING_PAGE_OVERVIEW: LandingPage.OVERVIEW,
}


def person_message(person: Person) -> identity_pb2.SignedInPerson:
    return identity_pb2.SignedInPerson(
        person_id=str(person.id),
        kind=_PERSON_KINDS[person.kind],
        display_name=person.display_name,
        roles=list(person.roles),
    )


def student_message(student: ShownStudent) -> identity_pb2.VisibleStudent:
    return identity_pb2.VisibleStudent(
        pseudonym=student.pseudonym,
        display_name=student.display_name,
        student_number=student.student_number,
        sponsored_visa=student.sponsored_visa,
    )


def preferences_message(preferences: Preferences) -> identity_pb2.Preferences:
    return identity_pb2.Preferences(landing_page=_LANDING_PAGES[preferences.landing_page])


def grant_message(grant: StoredGrant) -> identity_pb2.BreakGlassGrant:
    return identity_pb2.BreakGlassGrant(
        grant_id=str(grant.id),
        staff_person_id=str(grant.person_id),
        student_person_id=str(grant.student_id),
        reason=grant.reason,
        granted_at=timestamp(grant.granted_at),
        expires_at=timestamp(grant.expires_at),
    )


def module_message(module: StoredModule) -> identity_pb2.Module:
    return identity_pb2.Module(
        module_id=str(module.id),
        school_id=str(module.school_id),
        code=module.code,
        title=module.title,
        deleted=module.deleted,
    )


def school_message(school: StoredSchool) -> identity_pb2.School:
    return identity_pb2.School(school_id=str(school.id), code=school.code, name=school.name)


def module_run_message(run: ModuleRunSummary) -> identity_pb2.ModuleRun:
    return identity_pb2.ModuleRun(
        module_run_id=str(run.id), module_code=run.module_code, title=run.title, term=f"{run.academic_year} {run.term}"
    )


def managed_module_message(managed: ManageableModule) -> identity_pb2.ManagedModule:
    return identity_pb2.ManagedModule(
        module=module_message(managed.module),
        school=school_message(managed.school),
        runs=[module_run_message(run) for run in managed.runs],
        allowed_actions=list(managed.allowed_actions),
    )
