"""OULAD (the Open University Learning Analytics Dataset) as a student and enrolment source: studentInfo.csv gives
students and the module presentation each is on; studentRegistration.csv says who withdrew.

Data minimisation: only id_student (kept as an identifier, so that ingest can map OULAD's events to pseudonyms),
code_module and code_presentation (the enrolment) and, from registrations, whether the student unregistered are
used. Gender, region, highest education, deprivation band, age band, previous attempts, credits, disability,
final result and registration dates are never read past the header check, so they are stored nowhere.
"""

from __future__ import annotations

import re
import uuid

from tend_identity.importing.rows import Problems, Row, read_rows
from tend_identity.importing.student_records import Summary, import_id
from tend_identity.model import PersonKind
from tend_identity.store import Connection, identifiers
from tend_identity.store import organisation as org_store
from tend_identity.store import people as people_store
from tend_identity.store.people import NewPerson

FACULTY = ("OULAD", "The Open University (OULAD)")
SCHOOL = ("OULAD", "Open University modules (OULAD)")
ID_STUDENT = re.compile(r"[0-9]{1,12}")
MODULE = re.compile(r"[A-Z]{3}")
# 2013J: the presentation starting in October 2013 (J) or February (B) of that year.
PRESENTATION = re.compile(r"(20[0-9]{2})([BJ])")
# Each file carries more than Tend uses; these are the only columns read.
INFO_COLUMNS = ("code_module", "code_presentation", "id_student")
REGISTRATION_COLUMNS = ("code_module", "code_presentation", "id_student", "date_unregistration")
# Columns that must be present (so that a file of another shape is not taken for OULAD's) but are never read.
INFO_HEADER = (
    *INFO_COLUMNS, "gender", "region", "highest_education", "imd_band", "age_band", "num_of_prev_attempts",
    "studied_credits", "disability", "final_result",
)  # fmt: skip
REGISTRATION_HEADER = (*REGISTRATION_COLUMNS, "date_registration")


def academic_year_and_term(presentation: str) -> tuple[str, str]:
    """OU presentation code to Tend's academic year and term: 2013J -> 2013/14 october, 2014B -> 2013/14 february."""
    match = PRESENTATION.fullmatch(presentation)
    if match is None:
        raise ValueError("not an OU presentation code")
    year = int(match.group(1))
    start = year if match.group(2) == "J" else year - 1
    return f"{start}/{(start + 1) % 100:02d}", "october" if match.group(2) == "J" else "february"


def _header_check(data: bytes, header: tuple[str, ...]) -> None:
    read_rows(data, header, extra_allowed=True, problems=Problems())


class _Runs:
    """Module runs by OULAD module and presentation, made on first sight (a file names a handful, in every row)."""

    def __init__(self, conn: Connection) -> None:
        self._conn = conn
        self._known: dict[tuple[str, str], uuid.UUID | None] = {}

    def of(self, problems: Problems, row: Row) -> uuid.UUID | None:
        key = (row.get("code_module"), row.get("code_presentation"))
        if key not in self._known:
            self._known[key] = _run(self._conn, problems, row)
        elif self._known[key] is None:
            _run(self._conn, problems, row)  # to report this row's problem too
        return self._known[key]


def _run(conn: Connection, problems: Problems, row: Row) -> uuid.UUID | None:
    module, presentation = row.get("code_module"), row.get("code_presentation")
    if not MODULE.fullmatch(module):
        problems.add(row.line, "code_module: not an OULAD module code")
        return None
    try:
        year, term = academic_year_and_term(presentation)
    except ValueError:
        problems.add(row.line, "code_presentation: not an OU presentation code like 2013J")
        return None
    faculty_id, school_id = import_id("faculty", FACULTY[0]), import_id("school", SCHOOL[0])
    org_store.upsert_faculty(conn, faculty_id, *FACULTY)
    org_store.upsert_school(conn, school_id, faculty_id, *SCHOOL)
    code = f"OU-{module}"
    found = conn.execute("SELECT id FROM modules WHERE code = %s", (code,)).fetchone()
    module_id = found[0] if found else import_id("module", code)
    org_store.upsert_module(conn, module_id, school_id, code, f"OULAD module {module}")
    run_id = import_id("module_run", f"{code}:{year}:{term}")
    found_run = conn.execute(
        "SELECT id FROM module_runs WHERE module_id = %s AND academic_year = %s AND term = %s", (module_id, year, term)
    ).fetchone()
    run_id = found_run[0] if found_run else run_id
    org_store.upsert_module_run(conn, run_id, module_id, year, term)
    return run_id


def _student_id(problems: Problems, row: Row) -> str | None:
    value = row.get("id_student")
    if not ID_STUDENT.fullmatch(value):
        problems.add(row.line, "id_student: not a number")
        return None
    return value


def import_student_info(conn: Connection, data: bytes) -> Summary:
    """studentInfo.csv: a student per row (identified only by id_student) and their enrolment."""
    _header_check(data, INFO_HEADER)
    problems = Problems()
    rows = read_rows(data, INFO_COLUMNS, extra_allowed=True, problems=problems)
    runs = _Runs(conn)
    known = identifiers.people_by_external_id(conn, identifiers.OULAD_SOURCE, [row.get("id_student") for row in rows])
    with conn.pipeline():
        for row in rows:
            _apply_student(conn, problems, runs, known, row)
    problems.raise_if_any()
    return Summary(rows=len(rows))


def _apply_student(conn: Connection, problems: Problems, runs: _Runs, known: dict[str, uuid.UUID], row: Row) -> None:
    oulad_id = _student_id(problems, row)
    run = runs.of(problems, row)
    if oulad_id is None or run is None:
        return
    person_id = known.get(oulad_id) or import_id("oulad_student", oulad_id)
    people_store.upsert_person(
        conn,
        NewPerson(
            id=person_id,
            kind=PersonKind.STUDENT,
            username=f"oulad-{oulad_id}",
            display_name=f"OULAD student {oulad_id}",
            given_name="OULAD student",
            family_name=oulad_id,
            email="",
        ),
        None,
    )
    identifiers.link_external_id(conn, identifiers.OULAD_SOURCE, oulad_id, person_id)
    people_store.add_enrolment(conn, person_id, run)


def import_registrations(conn: Connection, data: bytes) -> Summary:
    """studentRegistration.csv: marks the enrolment of each student who unregistered as withdrawn. The students
    must have been imported from studentInfo.csv first."""
    _header_check(data, REGISTRATION_HEADER)
    problems = Problems()
    rows = read_rows(data, REGISTRATION_COLUMNS, extra_allowed=True, problems=problems)
    runs = _Runs(conn)
    known = identifiers.people_by_external_id(conn, identifiers.OULAD_SOURCE, [row.get("id_student") for row in rows])
    with conn.pipeline():
        for row in rows:
            _apply_registration(conn, problems, runs, known, row)
    problems.raise_if_any()
    return Summary(rows=len(rows))


def _apply_registration(
    conn: Connection, problems: Problems, runs: _Runs, known: dict[str, uuid.UUID], row: Row
) -> None:
    oulad_id = _student_id(problems, row)
    run = runs.of(problems, row)
    unregistered = row.get("date_unregistration")
    if unregistered and not re.fullmatch(r"-?[0-9]{1,4}", unregistered):
        problems.add(row.line, "date_unregistration: not a day number")
        return
    if oulad_id is None or run is None:
        return
    person = known.get(oulad_id)
    if person is None:
        problems.add(row.line, "id_student: not imported from studentInfo.csv")
        return
    conn.execute(
        "INSERT INTO enrolments (student_id, module_run_id, withdrawn) VALUES (%s, %s, %s)"
        " ON CONFLICT (student_id, module_run_id) DO UPDATE SET withdrawn = excluded.withdrawn",
        (person, run, bool(unregistered)),
    )
