"""Tend's own CSV formats for student records (docs/import.md): organisation, students, staff, modules, enrolments
and relationships.

Each row is checked and applied in one pass inside the caller's transaction, so a row may refer to one earlier in
the same file; every problem is collected, and if there is any the caller rolls the whole file back. Rows are
matched to what is stored by natural key (student number, user name, codes), so importing a file again changes
nothing.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass

from tend_identity import policy
from tend_identity.importing.rows import Problems, Row, read_rows
from tend_identity.model import PersonKind
from tend_identity.store import Connection
from tend_identity.store import organisation as org_store
from tend_identity.store import people as people_store
from tend_identity.store.people import NewPerson

_NAMESPACE = uuid.UUID("a7d3c1c2-5b0e-4e8f-9d55-3f1c2b7a9e41")
CODE = re.compile(r"[A-Z0-9][A-Z0-9-]{0,19}")
STUDENT_NUMBER = re.compile(r"[A-Za-z0-9][A-Za-z0-9-]{0,31}")
STAFF_NUMBER = re.compile(r"[A-Za-z0-9][A-Za-z0-9-]{0,31}")
USERNAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@-]{0,149}")
EMAIL = re.compile(r"[^@\s,;]+@[^@\s,;]+\.[^@\s,;]+")
ACADEMIC_YEAR = re.compile(r"[0-9]{4}/[0-9]{2}")
TERM = re.compile(r"[a-z0-9][a-z0-9 -]{0,19}")
MAX_NAME = 100
MAX_TITLE = 200
YES = {"yes", "y", "true", "1"}
NO = {"no", "n", "false", "0", ""}


def import_id(kind: str, key: str) -> uuid.UUID:
    """The id given to a new entity of `kind` with natural key `key`: the same on every import."""
    return uuid.uuid5(_NAMESPACE, f"{kind}:{key}")


@dataclass
class Summary:
    rows: int = 0


class _Importer:
    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        self.problems = Problems()

    def lookup(self, sql: str, *params: object) -> uuid.UUID | None:
        row = self.conn.execute(sql, params).fetchone()
        return None if row is None else row[0]

    def faculty(self, code: str) -> uuid.UUID | None:
        return self.lookup("SELECT id FROM faculties WHERE code = %s", code)

    def school(self, code: str) -> uuid.UUID | None:
        return self.lookup("SELECT id FROM schools WHERE code = %s", code)

    def programme(self, code: str) -> uuid.UUID | None:
        return self.lookup("SELECT id FROM programmes WHERE code = %s", code)

    def module(self, code: str) -> uuid.UUID | None:
        return self.lookup("SELECT id FROM modules WHERE code = %s", code)

    def module_run(self, code: str, year: str, term: str) -> uuid.UUID | None:
        return self.lookup(
            "SELECT mr.id FROM module_runs mr JOIN modules m ON m.id = mr.module_id"
            " WHERE m.code = %s AND mr.academic_year = %s AND mr.term = %s",
            code,
            year,
            term,
        )

    def student(self, number: str) -> uuid.UUID | None:
        return self.lookup("SELECT id FROM people WHERE student_number = %s AND kind = 'student'", number)

    def staff(self, username: str) -> uuid.UUID | None:
        return self.lookup("SELECT id FROM people WHERE username = %s AND kind = 'staff'", username)

    def username_owner(self, username: str) -> uuid.UUID | None:
        return self.lookup("SELECT id FROM people WHERE username = %s", username)

    def staff_number_owner(self, number: str) -> uuid.UUID | None:
        return self.lookup("SELECT id FROM people WHERE staff_number = %s", number)

    def stored_staff_number(self, person_id: uuid.UUID) -> str | None:
        row = self.conn.execute("SELECT staff_number FROM people WHERE id = %s", (person_id,)).fetchone()
        return None if row is None else row[0]

    # Field checks: each records a problem naming the column and returns None when the value is not usable.

    def matching(self, row: Row, column: str, pattern: re.Pattern[str], what: str) -> str | None:
        value = row.get(column)
        if not value:
            self.problems.add(row.line, f"{column}: required")
            return None
        if not pattern.fullmatch(value):
            self.problems.add(row.line, f"{column}: not {what}")
            return None
        return value

    def text(self, row: Row, column: str, longest: int, required: bool = True) -> str | None:
        value = row.get(column)
        if not value:
            if required:
                self.problems.add(row.line, f"{column}: required")
            return None if required else ""
        if len(value) > longest or not value.isprintable():
            self.problems.add(row.line, f"{column}: at most {longest} printable characters")
            return None
        return value

    def flag(self, row: Row, column: str) -> bool | None:
        value = row.get(column).lower()
        if value in YES:
            return True
        if value in NO:
            return False
        self.problems.add(row.line, f"{column}: expected yes or no")
        return None

    def level(self, row: Row, column: str) -> int | None:
        value = row.get(column)
        if not value.isdigit() or not 1 <= int(value) <= 8:
            self.problems.add(row.line, f"{column}: expected a year of study from 1 to 8")
            return None
        return int(value)

    def found(self, row: Row, column: str, what: str, value: uuid.UUID | None) -> uuid.UUID | None:
        if value is None:
            self.problems.add(row.line, f"{column}: no such {what}")
        return value


def _organisation(imp: _Importer, row: Row) -> None:
    kind = row.get("kind")
    code = imp.matching(row, "code", CODE, "a code of capital letters, digits and dashes")
    name = imp.text(row, "name", MAX_TITLE)
    if kind not in ("faculty", "school", "programme"):
        imp.problems.add(row.line, "kind: expected faculty, school or programme")
        return
    if kind == "faculty":
        if row.get("parent_code"):
            imp.problems.add(row.line, "parent_code: a faculty has no parent")
        if code and name:
            existing = imp.faculty(code)
            org_store.upsert_faculty(imp.conn, existing or import_id("faculty", code), code, name)
        return
    parent_kind = "faculty" if kind == "school" else "school"
    parent_code = row.get("parent_code")
    parent = imp.found(
        row, "parent_code", parent_kind, imp.faculty(parent_code) if kind == "school" else imp.school(parent_code)
    )
    if not (code and name and parent):
        return
    if kind == "school":
        org_store.upsert_school(imp.conn, imp.school(code) or import_id("school", code), parent, code, name)
    else:
        org_store.upsert_programme(imp.conn, imp.programme(code) or import_id("programme", code), parent, code, name)


def _names(imp: _Importer, row: Row) -> tuple[str, str, str] | None:
    given = imp.text(row, "given_name", MAX_NAME)
    family = imp.text(row, "family_name", MAX_NAME)
    preferred = imp.text(row, "preferred_name", MAX_NAME, required=False)
    if given is None or family is None or preferred is None:
        return None
    return given, family, f"{preferred or given} {family}"


def _username_free(imp: _Importer, row: Row, username: str, person_id: uuid.UUID) -> bool:
    owner = imp.username_owner(username)
    if owner is not None and owner != person_id:
        imp.problems.add(row.line, "username: already belongs to someone else")
        return False
    return True


def _student(imp: _Importer, row: Row) -> None:
    number = imp.matching(row, "student_number", STUDENT_NUMBER, "a student number of letters, digits and dashes")
    username = imp.matching(row, "username", USERNAME, "a user name")
    names = _names(imp, row)
    email = imp.matching(row, "email", EMAIL, "an e-mail address")
    programme = imp.found(row, "programme_code", "programme", imp.programme(row.get("programme_code")))
    level = imp.level(row, "level")
    visa = imp.flag(row, "sponsored_visa")
    if not (number and username and names and email and programme and level) or visa is None:
        return
    person_id = imp.student(number) or import_id("student", number)
    if not _username_free(imp, row, username, person_id):
        return
    given, family, display = names
    people_store.upsert_person(
        imp.conn,
        NewPerson(
            person_id, PersonKind.STUDENT, username, display, given, family, email, number, visa, programme, level
        ),
        None,
    )


def _staff_number(imp: _Importer, row: Row, person_id: uuid.UUID | None) -> tuple[bool, str | None]:
    """Whether the row's staff number is usable, and the number to store. A file without the column leaves the
    stored number as it is; an empty value means the person has none. `person_id` is None when the row names
    nobody usable, and then only the number's form is checked."""
    if "staff_number" not in row.values:
        return True, None if person_id is None else imp.stored_staff_number(person_id)
    number = row.get("staff_number")
    if not number:
        return True, None
    if not STAFF_NUMBER.fullmatch(number):
        imp.problems.add(row.line, "staff_number: not a staff number of letters, digits and dashes")
        return False, None
    # Checked against what is stored, which includes the rows of this file already applied.
    if imp.staff_number_owner(number) not in (None, person_id):
        imp.problems.add(row.line, "staff_number: already belongs to someone else")
        return False, None
    return True, number


def _staff(imp: _Importer, row: Row) -> None:
    username = imp.matching(row, "username", USERNAME, "a user name")
    names = _names(imp, row)
    email = imp.matching(row, "email", EMAIL, "an e-mail address")
    person_id = (imp.staff(username) or import_id("staff", username)) if username else None
    number_usable, number = _staff_number(imp, row, person_id)
    if not (username and person_id and names and email and number_usable):
        return
    if imp.username_owner(username) not in (None, person_id):
        imp.problems.add(row.line, "username: already belongs to a student")
        return
    given, family, display = names
    people_store.upsert_person(
        imp.conn,
        NewPerson(person_id, PersonKind.STAFF, username, display, given, family, email, staff_number=number),
        None,
    )


def _module(imp: _Importer, row: Row) -> None:
    code = imp.matching(row, "module_code", CODE, "a code of capital letters, digits and dashes")
    title = imp.text(row, "title", MAX_TITLE)
    school = imp.found(row, "school_code", "school", imp.school(row.get("school_code")))
    year = imp.matching(row, "academic_year", ACADEMIC_YEAR, "an academic year like 2026/27")
    term = imp.matching(row, "term", TERM, "a term of lower-case letters and digits")
    if not (code and title and school and year and term):
        return
    module_id = imp.module(code) or import_id("module", code)
    org_store.upsert_module(imp.conn, module_id, school, code, title)
    run_id = imp.module_run(code, year, term) or import_id("module_run", f"{code}:{year}:{term}")
    org_store.upsert_module_run(imp.conn, run_id, module_id, year, term)


def _run(imp: _Importer, row: Row) -> uuid.UUID | None:
    code, year, term = row.get("module_code"), row.get("academic_year"), row.get("term")
    return imp.found(row, "module_code", "module run in that year and term", imp.module_run(code, year, term))


def _enrolment(imp: _Importer, row: Row) -> None:
    student = imp.found(row, "student_number", "student", imp.student(row.get("student_number")))
    run = _run(imp, row)
    status = row.get("status") or "enrolled"
    if status not in ("enrolled", "withdrawn"):
        imp.problems.add(row.line, "status: expected enrolled or withdrawn")
        return
    if student and run:
        imp.conn.execute(
            "INSERT INTO enrolments (student_id, module_run_id, withdrawn) VALUES (%s, %s, %s)"
            " ON CONFLICT (student_id, module_run_id) DO UPDATE SET withdrawn = excluded.withdrawn",
            (student, run, status == "withdrawn"),
        )


def _split(row: Row, imp: _Importer, parts: int, shape: str) -> list[str] | None:
    pieces = row.get("scope").split(":")
    if len(pieces) != parts or not all(pieces):
        imp.problems.add(row.line, f"scope: expected {shape}")
        return None
    return pieces


def _personal_tutor(imp: _Importer, row: Row, staff: uuid.UUID | None, _relationship: str) -> None:
    student = imp.found(row, "scope", "student", imp.student(row.get("scope")))
    if staff and student:
        people_store.add_personal_tutor(imp.conn, staff, student)


def _level_tutor(imp: _Importer, row: Row, staff: uuid.UUID | None, _relationship: str) -> None:
    pieces = _split(row, imp, 2, "a programme code and a level, as BSC-CS:1")
    if pieces is None:
        return
    programme = imp.found(row, "scope", "programme", imp.programme(pieces[0]))
    if not pieces[1].isdigit() or not 1 <= int(pieces[1]) <= 8:
        imp.problems.add(row.line, "scope: the level must be from 1 to 8")
        return
    if staff and programme:
        people_store.add_level_tutor(imp.conn, staff, programme, int(pieces[1]))
        people_store.add_role(imp.conn, staff, "level_tutor", "programme", programme)


def _teaching(imp: _Importer, row: Row, staff: uuid.UUID | None, relationship: str) -> None:
    pieces = _split(row, imp, 3, "a module code, academic year and term, as CS101:2026/27:autumn")
    if pieces is None:
        return
    run = imp.found(row, "scope", "module run", imp.module_run(*pieces))
    if staff and run:
        people_store.add_teaching(imp.conn, staff, "teaches" if relationship == "teaches" else "leads", run)


def _role(imp: _Importer, row: Row, staff: uuid.UUID | None, relationship: str) -> None:
    scope_kind, scope = policy.ROLE_SCOPES[relationship], row.get("scope")
    finders: dict[str, Callable[[str], uuid.UUID | None]] = {
        "programme": imp.programme,
        "school": imp.school,
        "faculty": imp.faculty,
    }
    scope_id = None
    if scope_kind == "institution" and scope:
        imp.problems.add(row.line, "scope: an institution-wide relationship has no scope")
        return
    if scope_kind != "institution":
        scope_id = imp.found(row, "scope", scope_kind, finders[scope_kind](scope))
        if scope_id is None:
            return
    if staff:
        people_store.add_role(imp.conn, staff, relationship, scope_kind, scope_id)


_RelationshipImporter = Callable[[_Importer, Row, "uuid.UUID | None", str], None]
_BY_RELATIONSHIP: dict[str, _RelationshipImporter] = {
    "personal_tutor": _personal_tutor,
    "level_tutor": _level_tutor,
    "teaches": _teaching,
    "leads_module": _teaching,
    **dict.fromkeys(policy.ROLE_SCOPES, _role),
}


def _relationship(imp: _Importer, row: Row) -> None:
    staff = imp.found(row, "staff_username", "member of staff", imp.staff(row.get("staff_username")))
    relationship = row.get("relationship")
    apply = _BY_RELATIONSHIP.get(relationship)
    if apply is None:
        imp.problems.add(row.line, "relationship: not one of " + ", ".join(sorted(IMPORTABLE_RELATIONSHIPS)))
        return
    apply(imp, row, staff, relationship)


IMPORTABLE_RELATIONSHIPS = frozenset({"personal_tutor", "level_tutor", "teaches", "leads_module", *policy.ROLE_SCOPES})


@dataclass(frozen=True)
class Format:
    required: tuple[str, ...]
    optional: tuple[str, ...]
    apply: Callable[[_Importer, Row], None]


FORMATS: dict[str, Format] = {
    "organisation": Format(("kind", "code", "name", "parent_code"), (), _organisation),
    "students": Format(
        ("student_number", "username", "given_name", "family_name", "email", "programme_code", "level"),
        ("preferred_name", "sponsored_visa"),
        _student,
    ),
    "staff": Format(("username", "given_name", "family_name", "email"), ("preferred_name", "staff_number"), _staff),
    "modules": Format(("module_code", "title", "school_code", "academic_year", "term"), (), _module),
    "enrolments": Format(("student_number", "module_code", "academic_year", "term"), ("status",), _enrolment),
    "relationships": Format(("staff_username", "relationship", "scope"), (), _relationship),
}


def import_records(conn: Connection, kind: str, data: bytes) -> Summary:
    """Applies the file in the caller's transaction; raises ImportRejected (the caller rolls back) if any row is
    wrong."""
    spec = FORMATS[kind]
    importer = _Importer(conn)
    rows = read_rows(data, spec.required, spec.optional, problems=importer.problems)
    for row in rows:
        spec.apply(importer, row)
    importer.problems.raise_if_any()
    return Summary(rows=len(rows))
