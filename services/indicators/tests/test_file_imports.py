"""File imports against a real database and a fake identity: Moodle's log export with its quirks, and one OULAD
presentation in bulk. Both keep no identifier and change nothing when imported again."""

from __future__ import annotations

import csv
import io
import re
from datetime import UTC, date, datetime
from pathlib import Path

import grpc
import psycopg
import pytest
from psycopg_pool import ConnectionPool
from tend.identity.v1 import identity_pb2

from services.indicators.tests.fake_identity import FakeIdentity, pseudonym_for
from tend_indicators.directory import IdentityDirectory
from tend_indicators.ingest import moodle_log, oulad
from tend_indicators.ingest.problems import RejectedInput

DATA = Path(__file__).resolve().parents[3].parent / "shared" / "data"
MOODLE_LOG = DATA / "moodle-log" / "course-activity-log.csv"
OULAD = DATA / "oulad-AAA-2013J"
OPTIONS = moodle_log.MoodleLogOptions(module_run_id="run-moodle", academic_year_starts_on=date(2017, 9, 1))


@pytest.fixture
def directory(fake_identity: FakeIdentity) -> IdentityDirectory:
    return IdentityDirectory(grpc.insecure_channel(fake_identity.target))


def with_username_column(raw: bytes) -> bytes:
    """The real export as a site that added a user name column produces it (same rows, CR line endings kept)."""
    rows = list(csv.reader(io.StringIO(raw.decode("utf-8"), newline="")))
    full_name = rows[0].index("User full name")
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r")
    writer.writerow(["Username", *rows[0]])
    for row in rows[1:]:
        writer.writerow([row[full_name].lower(), *row])
    return out.getvalue().encode()


def test_the_real_export_without_user_names_is_refused_whole(
    pool: ConnectionPool, directory: IdentityDirectory, dsn: str
) -> None:
    raw = MOODLE_LOG.read_bytes()
    assert b"\n" not in raw  # old Mac line endings
    assert raw.count(b"\r") == 19296
    with pytest.raises(RejectedInput, match="does not map people by name"):
        moodle_log.import_log(pool, directory, raw, OPTIONS)
    with psycopg.connect(dsn) as conn:
        assert conn.execute("SELECT count(*) FROM engagement_events").fetchone() == (0,)


def test_the_export_with_user_names_is_imported_once_with_years_resolved(
    pool: ConnectionPool, directory: IdentityDirectory, fake_identity: FakeIdentity, dsn: str
) -> None:
    fake_identity.map_any_of.add(identity_pb2.IDENTIFIER_KIND_USERNAME)
    raw = with_username_column(MOODLE_LOG.read_bytes())
    first = moodle_log.import_log(pool, directory, raw, OPTIONS)
    assert (first.rows, first.stored, first.unknown_students) == (19296, 19296, 0)
    again = moodle_log.import_log(pool, directory, raw, OPTIONS)
    assert (again.stored, again.already_stored) == (0, 19296)
    with psycopg.connect(dsn) as conn:
        span = conn.execute("SELECT min(occurred_at), max(occurred_at) FROM engagement_events").fetchone()
        first_row = conn.execute(
            "SELECT occurred_at FROM engagement_events WHERE student_pseudonym = %s ORDER BY occurred_at DESC LIMIT 1",
            (pseudonym_for("duenwgmn"),),
        ).fetchone()
        dump = " ".join(r[0] for r in conn.execute("SELECT e::text FROM engagement_events e LIMIT 2000"))
    assert span is not None
    assert first_row is not None
    # Sep to Dec fall in 2017, the rest in 2018; "11 May, 09:44" is British Summer Time.
    assert (span[0].year, span[1].year) == (2017, 2018)
    assert first_row[0] == datetime(2018, 5, 11, 8, 44, tzinfo=UTC)
    assert "DuEnWgMN".lower() not in dump.lower()
    assert "127.0.0.1" not in dump
    assert "The user with id" not in dump


def test_a_bad_time_names_its_line_and_stores_nothing(
    pool: ConnectionPool, directory: IdentityDirectory, dsn: str
) -> None:
    text = "Username,Time,User full name,Event context,Component,Event name,Description,IP address,Origin\r"
    text += 's1,"11 May, 09:44",A B,Course: c,System,Course viewed,d,127.0.0.1,web\r'
    text += 's1,"31 Foo, 09:44",A B,Course: c,System,Course viewed,d,127.0.0.1,web\r'
    with pytest.raises(RejectedInput) as refused:
        moodle_log.import_log(pool, directory, text.encode(), OPTIONS)
    assert refused.value.problems[0].where == "line 3"
    with psycopg.connect(dsn) as conn:
        assert conn.execute("SELECT count(*) FROM engagement_events").fetchone() == (0,)


def test_an_oulad_presentation_is_imported_in_bulk_once_keeping_nothing_personal(
    pool: ConnectionPool, directory: IdentityDirectory, fake_identity: FakeIdentity, dsn: str
) -> None:
    fake_identity.map_any_of.add(identity_pb2.IDENTIFIER_KIND_OULAD_ID)
    presentation = oulad.read_presentation(OULAD)
    assert presentation.rows == 180_982
    importer = oulad.OuladImporter(
        presentation, oulad.OuladOptions(presentation_starts_on=date(2013, 10, 5), institution_id="ou"), directory
    )
    first = importer.import_all(pool)
    assert (first.clicks, first.unknown_students) == (180_982, 0)
    assert first.stored == first.clicks + first.submissions
    again = importer.import_all(pool)
    assert again.stored == 0
    with psycopg.connect(dsn) as conn:
        enrolled = conn.execute("SELECT count(*), count(unregistered_on) FROM enrolments").fetchone()
        deadlines = conn.execute("SELECT count(*) FROM assignments WHERE module_run_id = 'AAA-2013J'").fetchone()
        label = conn.execute("SELECT label FROM module_runs WHERE module_run_id = 'AAA-2013J'").fetchone()
        titles = [r[0] for r in conn.execute("SELECT title FROM assignments ORDER BY due_at")]
        text = " ".join(r[0] for r in conn.execute("SELECT s::text FROM students s"))
        rows = " ".join(r[0] for r in conn.execute("SELECT e::text FROM engagement_events e LIMIT 20000"))
    assert enrolled == (383, 60)
    assert deadlines == (5,)
    # Names a tutor reads in sentences: the presentation's codes, each assessment's type numbered by deadline.
    assert label == ("AAA 2013J",)
    assert titles == ["TMA 1", "TMA 2", "TMA 3", "TMA 4", "TMA 5"]
    # studentInfo.csv's special-category and demographic fields are never read.
    assert "Region" not in text
    assert "HE Qualification" not in text
    # Rows and their keys name the student by pseudonym, never by id_student.
    tokens = set(re.split(r"[^A-Za-z0-9_]+", rows))
    assert not tokens & set(presentation.registrations)
