"""The access policy, in one place: who may see which students, for what purpose, at which level of detail, and who
may do which action on what. Deny by default: anything not granted here is refused.

Three tables:
- RELATIONSHIPS: every relationship a person can have, and the students it reaches (its scope).
- STUDENT_DATA: per relationship and purpose, the level of detail: individual records, or anonymised aggregates only
  (suppressed below the minimum cohort size).
- ACTIONS: per action, the kind of resource it is aimed at and the relationships to that resource that allow it.

Everything else reads these tables: the decisions (access.py), the data access that finds relationships
(store/relations.py), the rendered copy in docs/access-policy.md (policy_docs.py) and the access-matrix test.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass


class Purpose(enum.Enum):
    """Why student data is wanted (identity.proto Purpose)."""

    ATTENDANCE_CORRECTION = "attendance correction"
    ENGAGEMENT_SUPPORT = "engagement support"
    VISA_COMPLIANCE = "visa compliance"
    COHORT_PATTERNS = "cohort patterns"


class Detail(enum.IntEnum):
    """How much of the students in scope a person sees; higher is more."""

    NONE = 0
    AGGREGATE = 1
    INDIVIDUAL = 2


@dataclass(frozen=True)
class Relationship:
    """A relationship, how a person comes to hold it, and the students it reaches."""

    name: str
    held_as: str
    scope: str
    # Why a student's records are shown through this relationship, in words for the person asking.
    reason: str
    # Whether the relationship reaches every student, so that no student is outside it.
    reaches_every_student: bool = False


SELF = "self"
BREAK_GLASS = "break_glass"

RELATIONSHIPS: tuple[Relationship, ...] = (
    Relationship(
        "personal_tutor", "personal tutor of a student", "own tutees", "You are this student's personal tutor."
    ),
    Relationship(
        "level_tutor", "level tutor of one level of a programme", "students of that programme level",
        "You are the level tutor of this student's programme and year.",
    ),
    Relationship(
        "teaches", "teaches a module run", "students on module runs they teach",
        "You teach a module run this student is on.",
    ),
    Relationship(
        "leads_module", "leads a module run", "students on module runs they lead",
        "You lead a module run this student is on.",
    ),
    Relationship(
        "programme_lead", "leads a programme", "students of their programme", "You lead this student's programme."
    ),
    Relationship(
        "director_of_school", "director of a school", "students of their school (its programmes and modules)",
        "You are the director of this student's school.",
    ),
    Relationship(
        "school_administrator", "administrator of a school", "students of their school (its programmes and modules)",
        "You administer this student's school.",
    ),
    Relationship(
        "faculty_pro_vice_chancellor", "pro-vice-chancellor of a faculty", "students of their faculty",
        "You are the pro-vice-chancellor of this student's faculty.",
    ),
    Relationship(
        "associate_dean_education", "associate dean (education) of a faculty", "students of their faculty",
        "You are the associate dean (education) of this student's faculty.",
    ),
    Relationship(
        "executive_team", "member of the executive team", "every student", "You are on the executive team.",
        reaches_every_student=True,
    ),
    Relationship(
        "project_staff", "member of the engagement project's staff", "every student", "You are on the project staff.",
        reaches_every_student=True,
    ),
    Relationship(
        "student_services", "member of student services", "every student", "You work in student services.",
        reaches_every_student=True,
    ),
    Relationship(
        "support_and_wellbeing", "member of the support and wellbeing team", "every student",
        "You work in support and wellbeing.", reaches_every_student=True,
    ),
    Relationship(
        "visa_immigration", "member of the visa and immigration team", "sponsored-visa students only",
        "You are on the visa and immigration team and this student holds a sponsored visa.",
    ),
    Relationship(
        "data_protection_officer", "the data protection officer", "no student's engagement data",
        "You are the data protection officer.",
    ),
    Relationship("system_administrator", "a system administrator", "no student's data", "You administer systems."),
    Relationship(SELF, "a student, about themself", "themself", "These are your own records."),
    Relationship(
        BREAK_GLASS, "an active break-glass grant for one student", "that student, until the grant expires",
        "You hold an active break-glass grant for this student.",
    ),
)  # fmt: skip
RELATIONSHIP_NAMES = frozenset(relationship.name for relationship in RELATIONSHIPS)
RELATIONSHIPS_BY_NAME: Mapping[str, Relationship] = {relationship.name: relationship for relationship in RELATIONSHIPS}

# Roles held in role_assignments that carry a relationship, with the scope kind they are held in. (personal_tutor,
# level_tutor, teaches and leads_module are relationships to a student, a programme level or a module run instead.)
ROLE_SCOPES: Mapping[str, str] = {
    "programme_lead": "programme",
    "director_of_school": "school",
    "school_administrator": "school",
    "faculty_pro_vice_chancellor": "faculty",
    "associate_dean_education": "faculty",
    "executive_team": "institution",
    "project_staff": "institution",
    "student_services": "institution",
    "support_and_wellbeing": "institution",
    "visa_immigration": "institution",
    "data_protection_officer": "institution",
    "system_administrator": "institution",
}

_A = Purpose.ATTENDANCE_CORRECTION
_E = Purpose.ENGAGEMENT_SUPPORT
_V = Purpose.VISA_COMPLIANCE
_C = Purpose.COHORT_PATTERNS
_IND = Detail.INDIVIDUAL
_AGG = Detail.AGGREGATE

# Who sees which students' data, per purpose. A relationship or purpose not listed sees nothing. Cohort patterns are
# aggregates for everyone.
STUDENT_DATA: Mapping[str, Mapping[Purpose, Detail]] = {
    "personal_tutor": {_E: _IND},
    "level_tutor": {_E: _IND, _C: _AGG},
    "teaches": {_A: _IND, _E: _IND, _C: _AGG},
    "leads_module": {_A: _IND, _E: _IND, _C: _AGG},
    "programme_lead": {_E: _IND, _C: _AGG},
    "director_of_school": {_E: _IND, _C: _AGG},
    "school_administrator": {_C: _AGG},
    "faculty_pro_vice_chancellor": {_C: _AGG},
    "associate_dean_education": {_C: _AGG},
    "executive_team": {_C: _AGG},
    "project_staff": {_C: _AGG},
    "student_services": {_E: _IND},
    "support_and_wellbeing": {_E: _IND},
    "visa_immigration": {_V: _IND},
    "data_protection_officer": {},
    "system_administrator": {},
    SELF: {_E: _IND, _V: _IND},
    BREAK_GLASS: {_A: _IND, _E: _IND, _V: _IND},
}

# Below this many students an aggregate is suppressed (not shown at all); settings may raise it.
DEFAULT_MINIMUM_COHORT = 10


@dataclass(frozen=True)
class ActionRule:
    """An action on a kind of resource, allowed to whoever holds one of `relationships` to that resource."""

    action: str
    resource_kind: str
    relationships: frozenset[str]
    allowed_reason: str
    refused_reason: str

    @property
    def name(self) -> str:
        """The rule's name in decisions and audit records: the action, qualified by the resource kind unless the
        action already starts with it ("module.update", "module_run.attendance.correct")."""
        if self.action.startswith(self.resource_kind + "."):
            return self.action
        return f"{self.resource_kind}.{self.action}"


STUDENT_VIEW = "student.view"


def _rule(action: str, kind: str, relationships: set[str], allowed: str, refused: str) -> ActionRule:
    return ActionRule(action, kind, frozenset(relationships), allowed, refused)


_TEACHING = {"teaches", "leads_module"}
# Who may send a student a supportive enquiry: the staff the source documents name as making contact.
_SUPPORTING = {
    "personal_tutor", "level_tutor", "teaches", "leads_module", "programme_lead", "director_of_school",
    "student_services", "support_and_wellbeing", "visa_immigration",
}  # fmt: skip
ACTIONS: tuple[ActionRule, ...] = (
    _rule(
        "teaching_session.open", "module_run", _TEACHING,
        "You teach or lead this module run.", "Only staff who teach or lead this module run may do this.",
    ),
    _rule(
        "teaching_session.present", "module_run", _TEACHING,
        "You teach or lead this module run.", "Only staff who teach or lead this module run may do this.",
    ),
    _rule(
        "teaching_session.create", "module_run", _TEACHING,
        "You teach or lead this module run.", "Only staff who teach or lead this module run may add its sessions.",
    ),
    _rule(
        "attendance.correct", "module_run", _TEACHING,
        "You teach or lead this module run.",
        "Only staff who teach or lead this module run may correct its attendance.",
    ),
    _rule(
        "module.update", "module", {"leads_module", "school_administrator"},
        "You lead this module or administer its school.",
        "Only the module's leads and its school's administrators may change it.",
    ),
    _rule(
        "module.create", "school", {"school_administrator"},
        "You administer this school.", "Only the school's administrators may create its modules.",
    ),
    _rule(
        "module.delete", "module", {"school_administrator"},
        "You administer this module's school.", "Only the module's school's administrators may delete it.",
    ),
    _rule(
        "module.restore", "module", {"school_administrator"},
        "You administer this module's school.", "Only the module's school's administrators may restore it.",
    ),
    _rule(
        "audit.read", "person", {"data_protection_officer", SELF},
        "You may read the audit records about this person.",
        "Only the data protection officer and the person themself may read these audit records.",
    ),
    _rule(
        "audit.read_all", "audit_log", {"data_protection_officer"},
        "You are the data protection officer.", "Only the data protection officer may read the whole audit log.",
    ),
    _rule(
        "break_glass.review", "audit_log", {"data_protection_officer"},
        "You are the data protection officer.", "Only the data protection officer reviews break-glass grants.",
    ),
    _rule(
        "enquiry.send", "student", _SUPPORTING,
        "You support this student.",
        "Only staff who support this student (tutors, their teachers and programme, school, student services,"
        " support and wellbeing, visa team for sponsored students) may send them a supportive enquiry.",
    ),
)  # fmt: skip


def student_view_relationships(purpose: Purpose) -> frozenset[str]:
    """The relationships to a student that allow seeing their individual records for `purpose`."""
    return frozenset(name for name, details in STUDENT_DATA.items() if details.get(purpose) is Detail.INDIVIDUAL)


def detail_for(relationship: str, purpose: Purpose) -> Detail:
    return STUDENT_DATA.get(relationship, {}).get(purpose, Detail.NONE)


def action_rules(action: str, resource_kind: str) -> list[ActionRule]:
    return [rule for rule in ACTIONS if rule.action == action and rule.resource_kind == resource_kind]


def _check() -> None:
    """The tables must agree with each other; checked at import so a typo cannot grant or hide anything."""
    unknown = (set(STUDENT_DATA) | {r for rule in ACTIONS for r in rule.relationships}) - RELATIONSHIP_NAMES
    if unknown:
        raise RuntimeError(f"policy names unknown relationships: {sorted(unknown)}")
    if set(STUDENT_DATA) != RELATIONSHIP_NAMES:
        raise RuntimeError("every relationship needs a STUDENT_DATA row, even an empty one")
    if any(details.get(_C, Detail.NONE) is Detail.INDIVIDUAL for details in STUDENT_DATA.values()):
        raise RuntimeError("cohort patterns are aggregates only")


_check()
