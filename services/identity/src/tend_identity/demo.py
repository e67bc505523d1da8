"""A demo university, built deterministically from a seed: one faculty, two schools, three programmes, six modules
each run in the 2026/27 autumn term, seventeen staff covering every relationship of the access policy, and 200
students in years 1 to 3.

Every demo person carries unique canary values (family name, e-mail, student or staff number) so privacy tests can
search other services' databases, logs and messages for them. Loading is idempotent: ids derive from natural keys, and
every write is an upsert, so loading twice leaves the same data.
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field

from tend_identity.model import PersonKind
from tend_identity.store import Connection
from tend_identity.store import organisation as org_store
from tend_identity.store import people as people_store
from tend_identity.store.people import NewPerson

DEFAULT_SEED = 2026
# Shared by every demo account, and printed with the logins: this is a demo, not a deployment.
DEMO_PASSWORD = "tend-demo"  # noqa: S105
ACADEMIC_YEAR = "2026/27"
TERM = "autumn"
STUDENT_COUNT = 200
SPONSORED_VISA_SHARE = 0.15
EMAIL_DOMAIN = "demo.tend.invalid"

_ID_NAMESPACE = uuid.UUID("6f3d0f4e-3c1a-4b59-9d55-0c2f7e1a9b10")

FACULTY = ("FSE", "Faculty of Science and Engineering")
SCHOOLS = (("COMP", "School of Computing"), ("MATH", "School of Mathematics"))
# code, title, school, the modules of its curriculum
PROGRAMMES = (
    ("BSC-CS", "BSc Computer Science", "COMP", ("CS101", "CS102", "CS201", "MA101")),
    ("BSC-SE", "BSc Software Engineering", "COMP", ("CS101", "CS102", "SE101")),
    ("BSC-MATH", "BSc Mathematics", "MATH", ("MA101", "MA102", "CS101")),
)
PROGRAMME_WEIGHTS = (0.45, 0.25, 0.30)
MODULES = (
    ("CS101", "Programming Fundamentals", "COMP"),
    ("CS102", "Computer Systems", "COMP"),
    ("CS201", "Databases", "COMP"),
    ("SE101", "Software Engineering Practice", "COMP"),
    ("MA101", "Calculus", "MATH"),
    ("MA102", "Linear Algebra", "MATH"),
)
# The school whose personal tutor looks after a programme's students.
TUTOR_BY_SCHOOL = {"COMP": "tutor1", "MATH": "tutor2"}


@dataclass(frozen=True)
class StaffPlan:
    """A demo member of staff: user name, roles as (role, scope kind, scope code), and module codes."""

    username: str
    roles: tuple[tuple[str, str, str | None], ...]
    leads: tuple[str, ...] = ()
    teaches: tuple[str, ...] = ()
    # (programme code, level) pairs the person is level tutor of.
    level_tutor_of: tuple[tuple[str, int], ...] = ()


STAFF = (
    StaffPlan("lecturer1", (("lecturer", "school", "COMP"),), leads=("CS101",), teaches=("CS201",)),
    StaffPlan("lecturer2", (("lecturer", "school", "COMP"),), leads=("CS102", "CS201")),
    StaffPlan("tutor1", (("lecturer", "school", "COMP"), ("personal_tutor", "school", "COMP")), teaches=("CS102",)),
    StaffPlan(
        "tutor2", (("lecturer", "school", "MATH"), ("personal_tutor", "school", "MATH")), leads=("MA101", "MA102")
    ),
    StaffPlan(
        "proglead1",
        (("lecturer", "school", "COMP"), ("programme_lead", "programme", "BSC-SE")),
        leads=("SE101",),
        teaches=("CS101",),
    ),
    StaffPlan("director1", (("director_of_school", "school", "COMP"),)),
    StaffPlan("schooladmin1", (("school_administrator", "school", "COMP"),)),
    StaffPlan("pvc1", (("faculty_pro_vice_chancellor", "faculty", "FSE"),)),
    StaffPlan("support1", (("student_services", "institution", None), ("support_and_wellbeing", "institution", None))),
    StaffPlan("visa1", (("visa_immigration", "institution", None),)),
    StaffPlan("dpo1", (("data_protection_officer", "institution", None),)),
    StaffPlan("sysadmin1", (("system_administrator", "institution", None),)),
    StaffPlan(
        "leveltutor1",
        (("lecturer", "school", "COMP"), ("level_tutor", "programme", "BSC-CS")),
        level_tutor_of=(("BSC-CS", 1),),
    ),
    StaffPlan("assocdean1", (("associate_dean_education", "faculty", "FSE"),)),
    StaffPlan("exec1", (("executive_team", "institution", None),)),
    StaffPlan("project1", (("project_staff", "institution", None),)),
    StaffPlan("schooladmin2", (("school_administrator", "school", "MATH"),)),
)
LEVELS = (1, 2, 3)

GIVEN_NAMES = (
    "Ada", "Grace", "Alan", "Katherine", "Tim", "Margaret", "Edsger", "Barbara", "Donald", "Frances", "Ken", "Radia",
    "Dennis", "Hedy", "Claude", "Mary", "John", "Shafi", "Leslie", "Sophie", "Yukihiro", "Guido", "Joan", "Niklaus",
    "Adele", "Linus", "Annie", "Vint", "Karen", "Bjarne", "Anita", "Tony", "Ida", "Robin", "Jean", "Amir",
    "Priya", "Chen", "Olu", "Fatima", "Mateo", "Aiko", "Kwame", "Ingrid", "Rahul", "Zainab",
)  # fmt: skip


def demo_id(kind: str, key: str) -> uuid.UUID:
    """The demo's id for the entity of `kind` with natural key `key`; the same on every load."""
    return uuid.uuid5(_ID_NAMESPACE, f"{kind}:{key}")


@dataclass(frozen=True)
class DemoLogin:
    """A row of the printed logins table: no names, only what is needed to sign in and what the account is."""

    username: str
    kind: PersonKind
    about: str


@dataclass
class DemoUniversity:
    people: list[NewPerson] = field(default_factory=list)
    roles: list[tuple[uuid.UUID, str, str, uuid.UUID | None]] = field(default_factory=list)
    teaching: list[tuple[uuid.UUID, str, uuid.UUID]] = field(default_factory=list)
    tutors: list[tuple[uuid.UUID, uuid.UUID]] = field(default_factory=list)
    enrolments: list[tuple[uuid.UUID, uuid.UUID]] = field(default_factory=list)
    level_tutors: list[tuple[uuid.UUID, uuid.UUID, int]] = field(default_factory=list)
    logins: list[DemoLogin] = field(default_factory=list)


def _scope_id(scope_kind: str, code: str | None) -> uuid.UUID | None:
    return None if code is None else demo_id(scope_kind, code)


class _Canaries:
    """Unique canary tags: six hex digits, drawn from the seeded generator, never repeated."""

    def __init__(self, rng: random.Random) -> None:
        self._rng = rng
        self._used: set[str] = set()

    def next(self) -> str:
        while True:
            tag = f"{self._rng.getrandbits(24):06x}"
            if tag not in self._used:
                self._used.add(tag)
                return tag


def _person(
    rng: random.Random,
    canaries: _Canaries,
    username: str,
    kind: PersonKind,
    sponsored_visa: bool = False,
    programme_id: uuid.UUID | None = None,
    level: int | None = None,
) -> NewPerson:
    tag = canaries.next()
    given = rng.choice(GIVEN_NAMES)
    family = f"Canary-{tag}"
    return NewPerson(
        id=demo_id("person", username),
        kind=kind,
        username=username,
        display_name=f"{given} {family}",
        given_name=given,
        family_name=family,
        email=f"canary-{tag}@{EMAIL_DOMAIN}",
        student_number=f"CN{tag.upper()}" if kind is PersonKind.STUDENT else None,
        # Staff numbers carry the canary tag too, so that they are as safe to search for as student numbers.
        staff_number=f"SN{tag.upper()}" if kind is PersonKind.STAFF else None,
        sponsored_visa=sponsored_visa,
        programme_id=programme_id,
        level=level,
    )


def build_demo(seed: int = DEFAULT_SEED) -> DemoUniversity:
    """The demo university for `seed`: the same seed always gives the same people, values and relationships."""
    rng = random.Random(seed)  # noqa: S311 (demo data, not secrets)
    canaries = _Canaries(rng)
    demo = DemoUniversity()
    for plan in STAFF:
        person = _person(rng, canaries, plan.username, PersonKind.STAFF)
        demo.people.append(person)
        for role, scope_kind, code in plan.roles:
            demo.roles.append((person.id, role, scope_kind, _scope_id(scope_kind, code)))
        for relation, codes in (("leads", plan.leads), ("teaches", plan.teaches)):
            demo.teaching.extend((person.id, relation, demo_id("module_run", code)) for code in codes)
        demo.level_tutors.extend((person.id, demo_id("programme", code), level) for code, level in plan.level_tutor_of)
        demo.logins.append(DemoLogin(plan.username, PersonKind.STAFF, ", ".join(sorted({r[0] for r in plan.roles}))))

    sponsored = set(rng.sample(range(STUDENT_COUNT), round(STUDENT_COUNT * SPONSORED_VISA_SHARE)))
    # Levels come from a generator of their own, so that names and canaries do not depend on how they are drawn.
    level_rng = random.Random(seed + 1)  # noqa: S311 (demo data, not secrets)
    for index in range(STUDENT_COUNT):
        username = f"student{index + 1:03d}"
        programme_code, _title, school_code, module_codes = rng.choices(PROGRAMMES, weights=PROGRAMME_WEIGHTS)[0]
        visa = index in sponsored
        person = _person(
            rng,
            canaries,
            username,
            PersonKind.STUDENT,
            sponsored_visa=visa,
            programme_id=demo_id("programme", programme_code),
            level=level_rng.choice(LEVELS),
        )
        demo.people.append(person)
        demo.tutors.append((demo_id("person", TUTOR_BY_SCHOOL[school_code]), person.id))
        demo.enrolments.extend((person.id, demo_id("module_run", code)) for code in module_codes)
        note = f"{programme_code}{', sponsored visa' if visa else ''}"
        demo.logins.append(DemoLogin(username, PersonKind.STUDENT, note))
    return demo


def load_demo(conn: Connection, demo: DemoUniversity, password_hash: str) -> None:
    """Writes the demo university in the caller's transaction. Existing rows are brought up to date, never
    duplicated; existing password hashes are kept."""
    faculty_id = demo_id("faculty", FACULTY[0])
    with conn.pipeline():
        org_store.upsert_faculty(conn, faculty_id, *FACULTY)
        for code, name in SCHOOLS:
            org_store.upsert_school(conn, demo_id("school", code), faculty_id, code, name)
        for code, title, school_code in MODULES:
            module_id = demo_id("module", code)
            org_store.upsert_module(conn, module_id, demo_id("school", school_code), code, title)
            org_store.upsert_module_run(conn, demo_id("module_run", code), module_id, ACADEMIC_YEAR, TERM)
        for code, title, school_code, module_codes in PROGRAMMES:
            programme_id = demo_id("programme", code)
            org_store.upsert_programme(conn, programme_id, demo_id("school", school_code), code, title)
            for module_code in module_codes:
                org_store.add_programme_module(conn, programme_id, demo_id("module", module_code))
        for person in demo.people:
            people_store.upsert_person(conn, person, password_hash)
        for person_id, role, scope_kind, scope_id in demo.roles:
            people_store.add_role(conn, person_id, role, scope_kind, scope_id)
        for person_id, relation, module_run_id in demo.teaching:
            people_store.add_teaching(conn, person_id, relation, module_run_id)
        for tutor_id, student_id in demo.tutors:
            people_store.add_personal_tutor(conn, tutor_id, student_id)
        for student_id, module_run_id in demo.enrolments:
            people_store.add_enrolment(conn, student_id, module_run_id)
        for tutor_id, programme_id, level in demo.level_tutors:
            people_store.add_level_tutor(conn, tutor_id, programme_id, level)


def demo_canaries(conn: Connection) -> list[str]:
    """Every canary value of the loaded demo: family names, e-mail addresses, student and staff numbers. None of
    them may ever appear outside identity."""
    return people_store.identifying_values(conn)


def format_logins(logins: Sequence[DemoLogin], students_shown: int = 5) -> str:
    """The demo logins as a plain-text table: every member of staff, then the first few students."""
    staff = [login for login in logins if login.kind is PersonKind.STAFF]
    students = [login for login in logins if login.kind is PersonKind.STUDENT]
    rows = [*staff, *students[:students_shown]]
    width = max(len(row.username) for row in rows)
    lines = [
        f"Demo logins. Every account's password is {DEMO_PASSWORD!r}: this is a demo, never a deployment.",
        "",
        f"{'username'.ljust(width)}  {'kind'.ljust(7)}  roles or programme",
        f"{'-' * width}  -------  ------------------",
        *(f"{row.username.ljust(width)}  {row.kind.value.ljust(7)}  {row.about}" for row in rows),
    ]
    if len(students) > students_shown:
        lines.append(f"... and {len(students) - students_shown} more students, up to {students[-1].username}")
    return "\n".join(lines)
