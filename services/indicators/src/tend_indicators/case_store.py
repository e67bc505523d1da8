"""Data access for flags, cases and case history one at a time (the batched writes of a recompute are in
case_writes.py)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

import psycopg


@dataclass(frozen=True)
class StoredFlag:
    flag_id: uuid.UUID
    case_id: uuid.UUID
    pseudonym: str
    module_run_id: str
    rule: str
    episode: str
    raised: bool
    observed_on: date
    sentence: str
    evidence: dict[str, Any]

    @property
    def key(self) -> tuple[str, str, str, str]:
        return (self.pseudonym, self.module_run_id, self.rule, self.episode)


def load_flags(conn: psycopg.Connection[Any]) -> dict[tuple[str, str, str, str], StoredFlag]:
    rows = conn.execute(
        "SELECT flag_id, case_id, student_pseudonym, module_run_id, rule, episode, status = 'raised', observed_on,"
        " sentence, evidence FROM flags"
    ).fetchall()
    flags = [StoredFlag(*row) for row in rows]
    return {flag.key: flag for flag in flags}


def open_case(cursor: psycopg.Cursor[Any], pseudonym: str, now: datetime) -> tuple[uuid.UUID, bool]:
    """The student's open case, opened now if there is none; (case id, whether it was opened now)."""
    cursor.execute("SELECT case_id FROM cases WHERE student_pseudonym = %s AND status = 'open'", (pseudonym,))
    row = cursor.fetchone()
    if row is not None:
        return row[0], False
    case_id = uuid.uuid4()
    cursor.execute(
        "INSERT INTO cases (case_id, student_pseudonym, status, opened_at, updated_at) VALUES (%s, %s, 'open', %s, %s)",
        (case_id, pseudonym, now, now),
    )
    return case_id, True


def add_entry(
    cursor: psycopg.Cursor[Any],
    case_id: uuid.UUID,
    text: str,
    now: datetime,
    flag_id: uuid.UUID | None = None,
    person_id: str | None = None,
    enquiry_request_id: str | None = None,
) -> None:
    """A line of the case's history; `person_id` is the member of staff who wrote it, if one did."""
    cursor.execute(
        "INSERT INTO case_entries (case_id, at, flag_id, text, person_id, enquiry_request_id)"
        " VALUES (%s, %s, %s, %s, %s, %s)",
        (case_id, now, flag_id, text, person_id, enquiry_request_id),
    )
    cursor.execute("UPDATE cases SET updated_at = %s WHERE case_id = %s", (now, case_id))


def unrouted_cases(conn: psycopg.Connection[Any]) -> list[tuple[uuid.UUID, str]]:
    return [
        (row[0], row[1])
        for row in conn.execute("SELECT case_id, student_pseudonym FROM cases WHERE status = 'open' AND NOT routed")
    ]
