"""Importing student records (Tend's CSV formats) and OULAD's student files: whole or not at all, with line
numbers for every problem, idempotent, and keeping nothing the platform does not use."""

from __future__ import annotations

import csv
import io
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg
import pytest

from services.identity.tests.kek import TEST_WRAPPING
from tend_identity import pseudonym_mapping
from tend_identity.importing.apply import records_digest, run_import
from tend_identity.importing.oulad import academic_year_and_term
from tend_identity.importing.rows import ImportRejected
from tend_identity.pseudonym_mapping import IdentifierKind
from tend_identity.store import relations
from tend_testing.plugin import DatabaseFactory

OULAD = Path(__file__).resolve().parents[3].parent / "shared" / "data" / "oulad-AAA-2013J"

ORGANISATION = b"""kind,code,name,parent_code
faculty,FAH,Faculty of Arts and Humanities,
school,HIST,School of History,FAH
programme,BA-HIST,BA History,HIST
"""
STAFF = b"""username,given_name,family_name,preferred_name,email,staff_number
htutor,Hannah,Tutor-Canary-aa01,,htutor@uni.example,E1001
hlead,Harold,Lead-Canary-aa02,Hal,hlead@uni.example,
"""
STUDENTS = b"""student_number,username,given_name,family_name,preferred_name,email,programme_code,level,sponsored_visa
H0001,hstudent1,Ines,Student-Canary-bb01,,ines@student.example,BA-HIST,1,no
H0002,hstudent2,Omar,Student-Canary-bb02,Om,omar@student.example,BA-HIST,2,yes
"""
MODULES = b"""module_code,title,school_code,academic_year,term
HI101,Medieval Europe,HIST,2026/27,autumn
"""
ENROLMENTS = b"""student_number,module_code,academic_year,term,status
H0001,HI101,2026/27,autumn,enrolled
H0002,HI101,2026/27,autumn,withdrawn
"""
RELATIONSHIPS = b"""staff_username,relationship,scope
htutor,personal_tutor,H0001
htutor,level_tutor,BA-HIST:2
hlead,leads_module,HI101:2026/27:autumn
hlead,programme_lead,BA-HIST
hlead,director_of_school,HIST
htutor,student_services,
"""
FILES = [
    ("organisation", ORGANISATION),
    ("staff", STAFF),
    ("students", STUDENTS),
    ("modules", MODULES),
    ("enrolments", ENROLMENTS),
    ("relationships", RELATIONSHIPS),
]


def _import_all(dsn: str) -> None:
    with psycopg.connect(dsn) as conn:
        for kind, data in FILES:
            run_import(conn, kind, data)


def _digest(dsn: str) -> str:
    with psycopg.connect(dsn) as conn:
        return records_digest(conn)


def test_student_records_import_and_grant_what_they_say(identity_dsn: str) -> None:
    _import_all(identity_dsn)

    with psycopg.connect(identity_dsn) as conn:
        people: dict[str, Any] = dict(conn.execute("SELECT username, id FROM people").fetchall())
        tutees = relations.students_in_scope(conn, people["htutor"], {"personal_tutor"}, datetime.now(UTC))
        level = relations.students_in_scope(conn, people["htutor"], {"level_tutor"}, datetime.now(UTC))
        led = relations.students_in_scope(conn, people["hlead"], {"leads_module"}, datetime.now(UTC))
        school = relations.students_in_scope(conn, people["hlead"], {"director_of_school"}, datetime.now(UTC))
        everyone = relations.students_in_scope(conn, people["htutor"], {"student_services"}, datetime.now(UTC))
        names: dict[str, str] = dict(conn.execute("SELECT username, display_name FROM people").fetchall())
        visa: dict[str, bool] = dict(
            conn.execute("SELECT username, sponsored_visa FROM people WHERE kind = 'student'").fetchall()
        )

    assert tutees == [people["hstudent1"]]
    assert level == [people["hstudent2"]]
    assert led == [people["hstudent1"]]  # the other withdrew from the run
    assert sorted(school) == sorted([people["hstudent1"], people["hstudent2"]])
    assert sorted(everyone) == sorted(school)
    assert names["hlead"] == "Hal Lead-Canary-aa02"
    assert names["hstudent1"] == "Ines Student-Canary-bb01"
    assert visa == {"hstudent1": False, "hstudent2": True}


def test_importing_the_same_files_again_changes_nothing(identity_dsn: str) -> None:
    _import_all(identity_dsn)
    before = _digest(identity_dsn)

    with psycopg.connect(identity_dsn) as conn:
        outcomes = [run_import(conn, kind, data) for kind, data in FILES]

    assert [outcome.changed for outcome in outcomes] == [False] * len(FILES)
    assert _digest(identity_dsn) == before


def test_a_changed_row_is_brought_up_to_date(identity_dsn: str) -> None:
    _import_all(identity_dsn)
    changed = STUDENTS.replace(b"H0001,hstudent1,Ines", b"H0001,hstudent1,Inez")

    with psycopg.connect(identity_dsn) as conn:
        outcome = run_import(conn, "students", changed)
        row = conn.execute("SELECT given_name FROM people WHERE student_number = 'H0001'").fetchone()

    assert outcome.changed
    assert row == ("Inez",)
    with psycopg.connect(identity_dsn) as conn:
        assert conn.execute("SELECT count(*) FROM people WHERE kind = 'student'").fetchone() == (2,)


def test_a_malformed_file_is_rejected_whole_with_its_line_numbers(identity_dsn: str) -> None:
    _import_all(identity_dsn)
    before = _digest(identity_dsn)
    malformed = (
        b"student_number,username,given_name,family_name,preferred_name,email,programme_code,level,sponsored_visa\n"
        b"H0003,hstudent3,Valid,Row-Canary-cc01,,valid@student.example,BA-HIST,1,no\n"
        b"H0004,hstudent4,Bad,Email-Canary-cc02,,not-an-address,BA-HIST,1,no\n"
        b"H0005,hstudent5,Bad,Programme-Canary-cc03,,p@student.example,NO-SUCH,9,maybe\n"
        b"H0006,hstudent1,Taken,Username-Canary-cc04,,t@student.example,BA-HIST,1,no\n"
        b"H0007,hstudent7,Too,Many\n"
    )

    with psycopg.connect(identity_dsn) as conn, pytest.raises(ImportRejected) as rejected:
        run_import(conn, "students", malformed)

    assert [str(problem) for problem in rejected.value.problems] == [
        "line 3: email: not an e-mail address",
        "line 4: level: expected a year of study from 1 to 8",
        "line 4: programme_code: no such programme",
        "line 4: sponsored_visa: expected yes or no",
        "line 5: username: already belongs to someone else",
        "line 6: fewer fields than the header has columns",
    ]
    assert "Canary" not in str(rejected.value)
    assert _digest(identity_dsn) == before  # not even the valid row 2


def _staff_numbers(dsn: str) -> dict[str, str | None]:
    with psycopg.connect(dsn) as conn:
        rows = conn.execute("SELECT username, staff_number FROM people WHERE kind = 'staff'").fetchall()
    return dict(rows)


def test_staff_numbers_are_imported_and_optional(identity_dsn: str) -> None:
    _import_all(identity_dsn)

    assert _staff_numbers(identity_dsn) == {"htutor": "E1001", "hlead": None}
    with psycopg.connect(identity_dsn) as conn:
        again = run_import(conn, "staff", STAFF)
    assert not again.changed
    assert _staff_numbers(identity_dsn) == {"htutor": "E1001", "hlead": None}


def test_a_staff_number_that_is_taken_or_malformed_is_rejected_with_its_line(identity_dsn: str) -> None:
    _import_all(identity_dsn)
    before = _digest(identity_dsn)
    bad = (
        b"username,given_name,family_name,email,staff_number\n"
        b"hnew1,New,One-Canary-dd01,n1@uni.example,E1001\n"
        b"hnew2,New,Two-Canary-dd02,n2@uni.example,E2002\n"
        b"hnew3,New,Three-Canary-dd03,n3@uni.example,E2002\n"
        b"hnew4,New,Four-Canary-dd04,n4@uni.example,E 4\n"
        b"hlead,Harold,Lead-Canary-aa02,hlead@uni.example,E2005\n"
    )

    with psycopg.connect(identity_dsn) as conn, pytest.raises(ImportRejected) as rejected:
        run_import(conn, "staff", bad)

    assert [str(problem) for problem in rejected.value.problems] == [
        "line 2: staff_number: already belongs to someone else",  # htutor's, from the first import
        "line 4: staff_number: already belongs to someone else",  # line 3's, earlier in this file
        "line 5: staff_number: not a staff number of letters, digits and dashes",
    ]
    assert "E1001" not in str(rejected.value)
    assert _digest(identity_dsn) == before  # not even lines 3 and 6


def test_a_staff_file_without_the_column_keeps_staff_numbers_and_an_empty_value_removes_one(
    identity_dsn: str,
) -> None:
    _import_all(identity_dsn)
    without_column = b"username,given_name,family_name,preferred_name,email\n" + b"\n".join(
        line.rsplit(b",", 1)[0] for line in STAFF.splitlines()[1:]
    )
    emptied = STAFF.replace(b"htutor@uni.example,E1001", b"htutor@uni.example,")

    with psycopg.connect(identity_dsn) as conn:
        kept = run_import(conn, "staff", without_column)
        removed = run_import(conn, "staff", emptied)

    assert not kept.changed
    assert removed.changed
    assert _staff_numbers(identity_dsn) == {"htutor": None, "hlead": None}


@pytest.mark.parametrize(
    ("data", "problem"),
    [
        (b"student_number,username\nH1,h1\n", "line 1: missing column(s): given_name, family_name, email,"),
        (STUDENTS.replace(b"sponsored_visa", b"sponsored_visa,gender"), "line 1: unknown column(s): gender"),
        (STUDENTS.splitlines()[0] + b"\n", "line 1: the file has a header and no rows"),
        (b"\xff\xfe\x00", "line 1: the file is not UTF-8 text"),
    ],
)
def test_a_file_of_the_wrong_shape_is_refused_before_any_row(identity_dsn: str, data: bytes, problem: str) -> None:
    with psycopg.connect(identity_dsn) as conn, pytest.raises(ImportRejected) as rejected:
        run_import(conn, "students", data)

    assert str(rejected.value.problems[0]).startswith(problem)


def test_relationships_name_what_is_wrong_with_their_scope(identity_dsn: str) -> None:
    _import_all(identity_dsn)
    bad = (
        b"staff_username,relationship,scope\n"
        b"htutor,level_tutor,BA-HIST\n"
        b"htutor,teaches,HI101:2030/31:spring\n"
        b"htutor,executive_team,HIST\n"
        b"nobody,personal_tutor,H0001\n"
        b"htutor,best_friend,H0001\n"
    )
    with psycopg.connect(identity_dsn) as conn, pytest.raises(ImportRejected) as rejected:
        run_import(conn, "relationships", bad)

    assert [(p.line, p.message.split(":")[0]) for p in rejected.value.problems] == [
        (2, "scope"),
        (3, "scope"),
        (4, "scope"),
        (5, "staff_username"),
        (6, "relationship"),
    ]


def test_oulad_presentations_map_to_academic_years() -> None:
    assert academic_year_and_term("2013J") == ("2013/14", "october")
    assert academic_year_and_term("2014B") == ("2013/14", "february")
    with pytest.raises(ValueError, match="presentation"):
        academic_year_and_term("2013X")


def _oulad(dsn: str, info: bytes | None = None) -> None:
    with psycopg.connect(dsn) as conn:
        run_import(conn, "oulad-students", info or (OULAD / "studentInfo.csv").read_bytes())
        run_import(conn, "oulad-registrations", (OULAD / "studentRegistration.csv").read_bytes())


def test_oulad_students_and_registrations_import_and_map_to_pseudonyms(identity_dsn: str) -> None:
    _oulad(identity_dsn)
    registrations = list(csv.DictReader(io.StringIO((OULAD / "studentRegistration.csv").read_text())))

    with psycopg.connect(identity_dsn) as conn:
        counts = conn.execute(
            "SELECT count(*), count(*) FILTER (WHERE withdrawn) FROM enrolments e JOIN module_runs mr"
            " ON mr.id = e.module_run_id WHERE mr.academic_year = '2013/14' AND mr.term = 'october'"
        ).fetchone()
        mapped = pseudonym_mapping.map_to_pseudonyms(
            conn, TEST_WRAPPING, IdentifierKind.OULAD_ID, [registrations[0]["id_student"], "999999999"], "2013/14"
        )
    assert counts == (383, sum(1 for r in registrations if r["date_unregistration"].strip()))
    assert list(mapped) == [registrations[0]["id_student"]]
    assert mapped[registrations[0]["id_student"]].startswith("p_")

    before = _digest(identity_dsn)
    _oulad(identity_dsn)
    assert _digest(identity_dsn) == before


def _every_text_in_the_database(dsn: str) -> str:
    with psycopg.connect(dsn) as conn:
        tables = [
            row[0]
            for row in conn.execute(
                "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public'"
            ).fetchall()
        ]
        return "\n".join(
            str(row[0]) for table in tables for row in conn.execute(f'SELECT t::text FROM "{table}" t').fetchall()
        )


def _scrambled(info: bytes) -> bytes:
    """studentInfo.csv with every field Tend must not keep replaced by another value."""
    rows = list(csv.DictReader(io.StringIO(info.decode())))
    swaps = {"gender": {"M": "F", "F": "M"}, "disability": {"Y": "N", "N": "Y"}}
    for number, row in enumerate(rows):
        for column in ("gender", "disability"):
            row[column] = swaps[column].get(row[column], row[column])
        row["region"] = f"Nowhere {number}"
        row["imd_band"] = f"{number}%"
        row["age_band"] = f"age-{number}"
        row["highest_education"] = f"school-{number}"
        row["studied_credits"] = str(number)
        row["num_of_prev_attempts"] = str(number % 3)
        row["final_result"] = "Unknown"
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=list(rows[0]), lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue().encode()


def test_oulad_fields_the_platform_does_not_use_are_stored_nowhere(
    identity_dsn: str, database_factory: DatabaseFactory
) -> None:
    """Two proofs: no distinctive value of those fields appears in any table's text; and importing a file where
    every one of them is changed leaves exactly the same records, so nothing derived from them is kept either."""
    info = (OULAD / "studentInfo.csv").read_bytes()
    _oulad(identity_dsn)

    stored = _every_text_in_the_database(identity_dsn)
    rows = list(csv.DictReader(io.StringIO(info.decode())))
    distinctive = {
        column: {row[column] for row in rows}
        for column in ("region", "imd_band", "age_band", "highest_education", "final_result")
    }
    assert len(distinctive["region"]) > 5
    found = {column: sorted(v for v in values if v and v in stored) for column, values in distinctive.items()}
    assert found == {column: [] for column in distinctive}
    with psycopg.connect(identity_dsn) as conn:
        columns = {row[0] for row in conn.execute("SELECT column_name FROM information_schema.columns").fetchall()}
    assert not columns & {"gender", "sex", "region", "imd_band", "age_band", "disability", "highest_education"}

    other = database_factory("tend_identity.migrations")
    _oulad(other, _scrambled(info))
    assert _digest(other) == _digest(identity_dsn)


def test_the_import_command_reports_line_numbers_and_exits_non_zero(identity_dsn: str, tmp_path: Path) -> None:
    bad = tmp_path / "staff.csv"
    bad.write_bytes(b"username,given_name,family_name,email\nok,A,B,a@b.example\n,A,B,not-an-address\n")
    good = tmp_path / "organisation.csv"
    good.write_bytes(ORGANISATION)
    env = {"PATH": "/usr/bin:/bin", "TEND_IDENTITY_DATABASE_URL": identity_dsn}

    refused = subprocess.run(
        [sys.executable, "-m", "tend_identity", "import", "staff", str(bad)],
        env=env, capture_output=True, text=True, check=False, timeout=60,
    )  # fmt: skip
    first = subprocess.run(
        [sys.executable, "-m", "tend_identity", "import", "organisation", str(good)],
        env=env, capture_output=True, text=True, check=False, timeout=60,
    )  # fmt: skip
    again = subprocess.run(
        [sys.executable, "-m", "tend_identity", "import", "organisation", str(good)],
        env=env, capture_output=True, text=True, check=False, timeout=60,
    )  # fmt: skip

    assert refused.returncode == 1
    assert "rejected, nothing was imported" in refused.stderr
    assert "line 3: username: required" in refused.stderr
    assert "line 3: email: not an e-mail address" in refused.stderr
    assert (first.returncode, again.returncode) == (0, 0)
    assert "3 row(s) imported; records changed" in first.stdout
    assert "3 row(s) imported; nothing changed" in again.stdout
