"""Organisation graphs for policy tests: faculties, schools, programmes, module runs, students and staff with their
relationships, as plain data that can be loaded into identity's database and searched in memory independently of
the SQL that decides."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime

from tend_identity.model import PersonKind
from tend_identity.store import Connection
from tend_identity.store import organisation as org_store
from tend_identity.store import people as people_store
from tend_identity.store.people import NewPerson

YEAR = "2026/27"


@dataclass
class Student:
    id: uuid.UUID
    programme: uuid.UUID
    level: int
    sponsored: bool = False
    runs: list[uuid.UUID] = field(default_factory=list)
    withdrawn_from: list[uuid.UUID] = field(default_factory=list)


@dataclass
class Grant:
    staff: uuid.UUID
    student: uuid.UUID
    granted_at: datetime
    expires_at: datetime


@dataclass
class OrgGraph:
    faculties: list[uuid.UUID] = field(default_factory=list)
    schools: dict[uuid.UUID, uuid.UUID] = field(default_factory=dict)  # school -> faculty
    programmes: dict[uuid.UUID, uuid.UUID] = field(default_factory=dict)  # programme -> school
    modules: dict[uuid.UUID, uuid.UUID] = field(default_factory=dict)  # module -> school
    runs: dict[uuid.UUID, uuid.UUID] = field(default_factory=dict)  # run -> module
    students: dict[uuid.UUID, Student] = field(default_factory=dict)
    staff: list[uuid.UUID] = field(default_factory=list)
    # (staff, relation "teaches" | "leads", run)
    teaching: list[tuple[uuid.UUID, str, uuid.UUID]] = field(default_factory=list)
    tutors: list[tuple[uuid.UUID, uuid.UUID]] = field(default_factory=list)  # (staff, student)
    level_tutors: list[tuple[uuid.UUID, uuid.UUID, int]] = field(default_factory=list)  # (staff, programme, level)
    # (staff, role, scope kind, scope id or None)
    roles: list[tuple[uuid.UUID, str, str, uuid.UUID | None]] = field(default_factory=list)
    grants: list[Grant] = field(default_factory=list)

    def faculty(self) -> uuid.UUID:
        faculty = uuid.uuid4()
        self.faculties.append(faculty)
        return faculty

    def school(self, faculty: uuid.UUID) -> uuid.UUID:
        school = uuid.uuid4()
        self.schools[school] = faculty
        return school

    def programme(self, school: uuid.UUID) -> uuid.UUID:
        programme = uuid.uuid4()
        self.programmes[programme] = school
        return programme

    def module_run(self, school: uuid.UUID) -> uuid.UUID:
        module, run = uuid.uuid4(), uuid.uuid4()
        self.modules[module] = school
        self.runs[run] = module
        return run

    def student(
        self, programme: uuid.UUID, level: int, sponsored: bool = False, runs: tuple[uuid.UUID, ...] = ()
    ) -> uuid.UUID:
        student = Student(uuid.uuid4(), programme, level, sponsored, list(runs))
        self.students[student.id] = student
        return student.id

    def member_of_staff(self) -> uuid.UUID:
        person = uuid.uuid4()
        self.staff.append(person)
        return person

    def load(self, conn: Connection) -> None:
        """Writes the graph in the caller's transaction."""
        with conn.pipeline():
            self._load_organisation(conn)
            self._load_people(conn)
        with conn.cursor() as cursor:
            cursor.executemany(
                "UPDATE enrolments SET withdrawn = true WHERE student_id = %s AND module_run_id = %s",
                [(s.id, run) for s in self.students.values() for run in s.withdrawn_from],
            )

    def _load_organisation(self, conn: Connection) -> None:
        for faculty in self.faculties:
            org_store.upsert_faculty(conn, faculty, f"F{faculty.hex[:8]}", "Faculty")
        for school, faculty in self.schools.items():
            org_store.upsert_school(conn, school, faculty, f"S{school.hex[:8]}", "School")
        for programme, school in self.programmes.items():
            org_store.upsert_programme(conn, programme, school, f"P{programme.hex[:8]}", "Programme")
        for module, school in self.modules.items():
            org_store.upsert_module(conn, module, school, f"M{module.hex[:8]}", "Module")
        for run, module in self.runs.items():
            org_store.upsert_module_run(conn, run, module, YEAR, "autumn")

    def _load_people(self, conn: Connection) -> None:
        for student in self.students.values():
            people_store.upsert_person(conn, _person(student.id, PersonKind.STUDENT, student), None)
        for person in self.staff:
            people_store.upsert_person(conn, _person(person, PersonKind.STAFF, None), None)
        for student in self.students.values():
            for run in student.runs:
                people_store.add_enrolment(conn, student.id, run)
        for person, relation, run in self.teaching:
            people_store.add_teaching(conn, person, relation, run)
        for person, student_id in self.tutors:
            people_store.add_personal_tutor(conn, person, student_id)
        for person, programme, level in self.level_tutors:
            people_store.add_level_tutor(conn, person, programme, level)
        for person, role, scope_kind, scope_id in self.roles:
            people_store.add_role(conn, person, role, scope_kind, scope_id)
        for grant in self.grants:
            conn.execute(
                "INSERT INTO break_glass_grants (id, person_id, student_id, reason, granted_at, expires_at)"
                " VALUES (%s, %s, %s, 'a test grant of break-glass access', %s, %s)",
                (uuid.uuid4(), grant.staff, grant.student, grant.granted_at, grant.expires_at),
            )

    # Independent answers, by walking the graph in memory.

    def school_of_student(self, student: Student) -> set[uuid.UUID]:
        active = [run for run in student.runs if run not in student.withdrawn_from]
        return {self.programmes[student.programme]} | {self.modules[self.runs[run]] for run in active}

    def reachable_individually(self, staff: uuid.UUID, student_id: uuid.UUID, now: datetime) -> bool:
        """Whether any relationship path leads from the member of staff down to the student: tutor of them, level
        tutor of their programme and level, teaching or leading a run they are on, a role over their programme,
        school or faculty, an institution-wide role, or an active break-glass grant. (Which of these give
        individual detail is the policy's business; this is the outer bound.)"""
        student = self.students[student_id]
        active_runs = {run for run in student.runs if run not in student.withdrawn_from}
        schools = self.school_of_student(student)
        faculties = {self.schools[school] for school in schools}
        if (staff, student_id) in self.tutors:
            return True
        if (staff, student.programme, student.level) in self.level_tutors:
            return True
        if any(person == staff and run in active_runs for person, _relation, run in self.teaching):
            return True
        for person, _role, scope_kind, scope_id in self.roles:
            if person != staff:
                continue
            if scope_kind == "institution":
                return True
            if scope_kind == "programme" and scope_id == student.programme:
                return True
            if scope_kind == "school" and scope_id in schools:
                return True
            if scope_kind == "faculty" and scope_id in faculties:
                return True
        return any(
            g.staff == staff and g.student == student_id and g.granted_at <= now < g.expires_at for g in self.grants
        )


def _person(person_id: uuid.UUID, kind: PersonKind, student: Student | None) -> NewPerson:
    tag = person_id.hex[:12]
    return NewPerson(
        id=person_id,
        kind=kind,
        username=f"u{tag}",
        display_name=f"Person {tag}",
        given_name="Person",
        family_name=tag,
        email=f"{tag}@example.invalid",
        student_number=f"S{tag}" if student else None,
        sponsored_visa=student.sponsored if student else False,
        programme_id=student.programme if student else None,
        level=student.level if student else None,
    )
