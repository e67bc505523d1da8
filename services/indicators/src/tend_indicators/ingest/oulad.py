"""The Open University Learning Analytics Dataset (OULAD) as a bulk source: one module presentation's CSV files.

Read: courses.csv (the presentation's length), studentRegistration.csv (registration and unregistration days),
vle.csv (each site's activity type), studentVle.csv (daily clicks per student and site), assessments.csv (deadlines,
and types for titles such as "TMA 1") and studentAssessment.csv (submissions). Not read at all: studentInfo.csv,
whose gender, region, deprivation band, age band and disability the platform has no use for, and scores. Days in
OULAD count from the presentation's start, which the data set does not date; the importer is told it.

Students are mapped by OULAD's id_student (identifier kind OULAD_ID) in one batch. studentVle.csv repeats identical
(student, site, day) rows, so a click row's key is its (pseudonym, site, day) and its occurrence among identical
ones: importing the same files again changes nothing. Rows are stored with COPY in one transaction.
"""

from __future__ import annotations

import csv
import zoneinfo
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any

import psycopg
from psycopg_pool import ConnectionPool

from tend_indicators.directory import Directory, IdentifierKind
from tend_indicators.ingest import reference
from tend_indicators.ingest.fields import MAX_LABEL, readable_label
from tend_indicators.ingest.problems import Problem, RejectedInput
from tend_indicators.ingest.records import EngagementRecord, store_records

# A day's clicks are summarised per day; noon keeps the day the same in any time zone a few hours either side.
_CLICK_TIME = time(12, 0)
# A deadline is the end of its day.
_DEADLINE_TIME = time(23, 59)


@dataclass(frozen=True)
class OuladOptions:
    presentation_starts_on: date
    institution_id: str | None = None
    programme_id: str | None = None
    timezone: str = "Europe/London"
    # Defaults to "<code_module>-<code_presentation>", for example "AAA-2013J".
    module_run_id: str | None = None


@dataclass
class OuladPresentation:
    """The fields of one presentation the platform uses, as read from its files."""

    code_module: str
    code_presentation: str
    length_days: int
    # id_student -> (registration day, unregistration day)
    registrations: dict[str, tuple[int | None, int | None]] = field(default_factory=dict)
    site_types: dict[str, str] = field(default_factory=dict)
    # (id_student, id_site, day, clicks), in file order.
    clicks: list[tuple[str, str, int, int]] = field(default_factory=list)
    # id_assessment -> deadline day (assessments without one, the exam, are not expected by a day)
    deadlines: dict[str, int] = field(default_factory=dict)
    # id_assessment -> assessment_type ("TMA", "CMA", "Exam"), for titles a tutor reads
    assessment_types: dict[str, str] = field(default_factory=dict)
    # (id_assessment, id_student, day submitted)
    submissions: list[tuple[str, str, int]] = field(default_factory=list)

    @property
    def default_run_id(self) -> str:
        return f"{self.code_module}-{self.code_presentation}"

    @property
    def label(self) -> str | None:
        """The presentation as the OU names it, for example "AAA 2013J"; None if the codes do not make a label."""
        try:
            return readable_label(f"{self.code_module} {self.code_presentation}")
        except ValueError:
            return None

    def assessment_titles(self) -> dict[str, str]:
        """Titles of the assessments with a deadline: their type, numbered in deadline order when the type occurs
        more than once ("TMA 1", "TMA 2", "CMA 1"); none for an assessment without a type."""
        by_type: dict[str, list[str]] = {}
        for assessment, _day in sorted(self.deadlines.items(), key=lambda item: (item[1], item[0])):
            kind = self.assessment_types.get(assessment, "")
            if kind:
                by_type.setdefault(kind, []).append(assessment)
        titles = {}
        for kind, assessments in by_type.items():
            for number, assessment in enumerate(assessments, start=1):
                titles[assessment] = f"{kind} {number}" if len(assessments) > 1 else kind
        return titles

    @property
    def rows(self) -> int:
        return len(self.clicks)


def _rows(path: Path, required: Iterable[str]) -> list[dict[str, str]]:
    if not path.exists():
        raise RejectedInput([Problem(path.name, "", "is missing")])
    with path.open(newline="", encoding="utf-8-sig") as handle:
        reader = csv.DictReader(handle)
        missing = [name for name in required if name not in (reader.fieldnames or [])]
        if missing:
            raise RejectedInput([Problem(path.name, "", f"missing column {name!r}") for name in missing])
        return list(reader)


def _day(value: str, where: str, problems: list[Problem]) -> int | None:
    value = value.strip()
    if not value:
        return None
    try:
        return int(value)
    except ValueError:
        problems.append(Problem(where, "", "is not a whole number of days"))
        return None


def read_presentation(directory: Path) -> OuladPresentation:
    """Reads and checks the files; RejectedInput names every bad line."""
    problems: list[Problem] = []
    courses = _rows(directory / "courses.csv", ("code_module", "code_presentation", "module_presentation_length"))
    if len(courses) != 1:
        raise RejectedInput([Problem("courses.csv", "", "must describe exactly one presentation")])
    course = courses[0]
    presentation = OuladPresentation(
        course["code_module"], course["code_presentation"], int(course["module_presentation_length"])
    )
    for line, row in enumerate(
        _rows(directory / "studentRegistration.csv", ("id_student", "date_registration", "date_unregistration")), 2
    ):
        where = f"studentRegistration.csv line {line}"
        presentation.registrations[row["id_student"]] = (
            _day(row["date_registration"], where, problems),
            _day(row["date_unregistration"], where, problems),
        )
    for row in _rows(directory / "vle.csv", ("id_site", "activity_type")):
        presentation.site_types[row["id_site"]] = row["activity_type"]
    for line, row in enumerate(_rows(directory / "studentVle.csv", ("id_student", "id_site", "date", "sum_click")), 2):
        where = f"studentVle.csv line {line}"
        day = _day(row["date"], where, problems)
        clicks = _day(row["sum_click"], where, problems)
        if day is None or clicks is None or clicks < 0:
            if not any(p.where == where for p in problems):
                problems.append(Problem(where, "", "needs a date and a non-negative sum_click"))
            continue
        presentation.clicks.append((row["id_student"], row["id_site"], day, clicks))
    for row in _rows(directory / "assessments.csv", ("id_assessment", "date")):
        deadline = _day(row["date"], f"assessments.csv {row['id_assessment']}", problems)
        if deadline is not None:
            presentation.deadlines[row["id_assessment"]] = deadline
        # Optional: without it an assessment has no title and its sentence names it by deadline.
        kind = (row.get("assessment_type") or "").strip()
        if kind and kind.isprintable() and len(kind) <= MAX_LABEL - 4:
            presentation.assessment_types[row["id_assessment"]] = kind
    for line, row in enumerate(
        _rows(directory / "studentAssessment.csv", ("id_assessment", "id_student", "date_submitted")), 2
    ):
        submitted = _day(row["date_submitted"], f"studentAssessment.csv line {line}", problems)
        if submitted is not None:
            presentation.submissions.append((row["id_assessment"], row["id_student"], submitted))
    if problems:
        raise RejectedInput(problems)
    return presentation


@dataclass(frozen=True)
class OuladImportResult:
    clicks: int
    submissions: int
    stored: int
    unknown_students: int


class OuladImporter:
    """Imports a presentation, or (for the day-by-day replay) the part of it known by a given day."""

    def __init__(self, presentation: OuladPresentation, options: OuladOptions, directory: Directory) -> None:
        self.presentation = presentation
        self.options = options
        self.module_run_id = options.module_run_id or presentation.default_run_id
        self._zone = zoneinfo.ZoneInfo(options.timezone)
        students = set(presentation.registrations) | {c[0] for c in presentation.clicks}
        self.pseudonyms = directory.map_to_pseudonyms(IdentifierKind.OULAD_ID, sorted(students))
        self._click_keys = self._occurrence_keys()
        # Row positions by day, so that importing one day at a time (the replay) does not scan every row each day.
        self._rows_by_day: dict[int, list[int]] = {}
        for index, (_student, _site, day, _clicks) in enumerate(presentation.clicks):
            self._rows_by_day.setdefault(day, []).append(index)

    def _rows_between(self, first: int | None, last: int | None) -> list[int]:
        days = [d for d in self._rows_by_day if (first is None or d >= first) and (last is None or d <= last)]
        return [index for day in sorted(days) for index in self._rows_by_day[day]]

    def day(self, offset: int) -> date:
        return self.options.presentation_starts_on + timedelta(days=offset)

    def _at(self, offset: int, at: time) -> datetime:
        return datetime.combine(self.day(offset), at, tzinfo=self._zone).astimezone(UTC)

    def _occurrence_keys(self) -> list[str]:
        seen: Counter[tuple[str, str, int]] = Counter()
        keys = []
        for student, site, day, _clicks in self.presentation.clicks:
            seen[(student, site, day)] += 1
            keys.append(f"{site}:{day}:{seen[(student, site, day)]}")
        return keys

    def import_all(self, pool: ConnectionPool) -> OuladImportResult:
        return self.import_days(pool, None, None)

    def import_days(self, pool: ConnectionPool, first: int | None, last: int | None) -> OuladImportResult:
        """Imports what happened on days first..last (None: unbounded) and the reference data known by `last`."""

        def within(day: int) -> bool:
            return (first is None or day >= first) and (last is None or day <= last)

        run = self.module_run_id
        records: list[EngagementRecord] = []
        unknown: set[str] = set()
        for index in self._rows_between(first, last):
            student, site, day, clicks = self.presentation.clicks[index]
            key = self._click_keys[index]
            pseudonym = self.pseudonyms.get(student)
            if pseudonym is None:
                unknown.add(student)
                continue
            records.append(
                EngagementRecord(
                    f"oulad:{run}:{pseudonym}:{key}",
                    pseudonym,
                    run,
                    "vle",
                    self.presentation.site_types.get(site, "other"),
                    self._at(day, _CLICK_TIME),
                    clicks,
                    f"oulad-site:{site}",
                )
            )
        click_records = len(records)
        for assessment, student, day in self.presentation.submissions:
            pseudonym = self.pseudonyms.get(student)
            if not within(day) or pseudonym is None or assessment not in self.presentation.deadlines:
                continue
            records.append(
                EngagementRecord(
                    f"oulad:{run}:{pseudonym}:submitted:{assessment}",
                    pseudonym,
                    run,
                    "assignment",
                    "submitted",
                    self._at(day, _CLICK_TIME),
                    1,
                    f"oulad:{assessment}",
                )
            )
        with pool.connection() as conn, conn.transaction(), conn.cursor() as cur:
            self._store_reference(cur, last)
            stored = store_records(cur, records, self.options.timezone)
        return OuladImportResult(click_records, len(records) - click_records, stored, len(unknown))

    def _store_reference(self, cursor: psycopg.Cursor[Any], last: int | None) -> None:
        run = self.module_run_id
        reference.store_module_runs(
            cursor,
            [
                reference.ModuleRun(
                    run,
                    self.options.institution_id,
                    self.options.programme_id,
                    self.day(0),
                    self.day(self.presentation.length_days),
                    self.presentation.label,
                )
            ],
        )
        titles = self.presentation.assessment_titles()
        reference.store_assignments(
            cursor,
            [
                reference.ExpectedAssignment(f"oulad:{a}", run, self._at(day, _DEADLINE_TIME), titles.get(a))
                for a, day in sorted(self.presentation.deadlines.items())
            ],
        )
        enrolments = []
        for student, (registered, unregistered) in sorted(self.presentation.registrations.items()):
            pseudonym = self.pseudonyms.get(student)
            if pseudonym is None:
                continue
            known_unregistration = (
                unregistered if unregistered is not None and (last is None or unregistered <= last) else None
            )
            enrolments.append(
                reference.Enrolment(
                    run,
                    pseudonym,
                    self.day(registered) if registered is not None else None,
                    self.day(known_unregistration) if known_unregistration is not None else None,
                )
            )
        reference.store_enrolments(cursor, enrolments)
        reference.store_students(
            cursor,
            [
                reference.Student(p, self.options.institution_id, self.options.programme_id, False)
                for p in sorted({self.pseudonyms[s] for s in self.presentation.registrations if s in self.pseudonyms})
            ],
        )
