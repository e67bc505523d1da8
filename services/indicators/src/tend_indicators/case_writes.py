"""The writes of one recompute, collected in memory and made in a few batched statements inside one transaction:
flags raised, updated and withdrawn, cases opened and closed, case history, and the events that go with them.

A recompute for tens of thousands of students raises thousands of flags; one round trip per flag, case line and
event would take most of the time, so everything the writes need (open cases, their staff, their standing flags) is
read once first, and ids are made here.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

import psycopg
from psycopg.types.json import Jsonb
from tend.indicators.v1 import events_pb2

from tend_common.messaging.envelope import OutgoingEvent
from tend_indicators import events
from tend_indicators.case_event_outbox import TABLE as EVENT_TABLE
from tend_indicators.case_store import StoredFlag
from tend_indicators.directory import ResponsibleStaff

CLOSED_TEXT = "Case closed: every flag was withdrawn before anyone acted on it."
# Taken (for the transaction) by every writer that opens, closes or adds flags to cases: a recompute's writes and
# staff actions take turns, so a case is never closed under a flag being added to it.
CASE_WRITE_LOCK = 6_316_007


@dataclass
class OpenCase:
    case_id: uuid.UUID
    pseudonym: str
    staff: list[str] = field(default_factory=list)
    raised: int = 0


@dataclass
class CaseWriter:
    """Collects changes against the open cases as they were when it was made; `flush` writes them."""

    now: datetime
    by_student: dict[str, OpenCase] = field(default_factory=dict)
    by_id: dict[uuid.UUID, OpenCase] = field(default_factory=dict)
    _new_cases: list[OpenCase] = field(default_factory=list)
    _flags: list[tuple[Any, ...]] = field(default_factory=list)
    _evidence: list[tuple[Any, ...]] = field(default_factory=list)
    _withdrawals: list[tuple[Any, ...]] = field(default_factory=list)
    _entries: list[tuple[Any, ...]] = field(default_factory=list)
    _events: list[OutgoingEvent] = field(default_factory=list)
    _touched: set[uuid.UUID] = field(default_factory=set)
    _closed: list[uuid.UUID] = field(default_factory=list)

    @classmethod
    def load(cls, conn: psycopg.Connection[Any], now: datetime) -> CaseWriter:
        """Reads the open cases; call inside the transaction `flush` writes in."""
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (CASE_WRITE_LOCK,))
        writer = cls(now)
        for case_id, pseudonym in conn.execute("SELECT case_id, student_pseudonym FROM cases WHERE status = 'open'"):
            case = OpenCase(case_id, pseudonym)
            writer.by_student[pseudonym] = case
            writer.by_id[case_id] = case
        for case_id, person_id in conn.execute(
            "SELECT s.case_id, s.person_id FROM case_staff s JOIN cases c USING (case_id) WHERE c.status = 'open'"
            " ORDER BY s.case_id, s.position"
        ):
            writer.by_id[case_id].staff.append(person_id)
        for case_id, raised in conn.execute(
            "SELECT f.case_id, count(*) FROM flags f JOIN cases c USING (case_id)"
            " WHERE c.status = 'open' AND f.status = 'raised' GROUP BY 1"
        ):
            writer.by_id[case_id].raised = raised
        return writer

    def _entry(self, case: OpenCase, text: str, flag_id: uuid.UUID | None = None) -> None:
        self._entries.append((case.case_id, self.now, flag_id, text))
        self._touched.add(case.case_id)

    def raise_flag(
        self,
        key: tuple[str, str, str, str],
        window: tuple[date, date],
        sentence: str,
        evidence: dict[str, Any],
        as_of: date,
        existing: StoredFlag | None,
    ) -> None:
        """A new flag, or a withdrawn one raised again (its evidence is back), in the student's open case."""
        pseudonym, module_run_id, rule, episode = key
        case = self.by_student.get(pseudonym)
        opened = case is None
        if case is None:
            case = OpenCase(uuid.uuid4(), pseudonym)
            self.by_student[pseudonym] = case
            self.by_id[case.case_id] = case
            self._new_cases.append(case)
        flag_id = existing.flag_id if existing is not None else uuid.uuid4()
        case.raised += 1
        self._flags.append(
            (flag_id, case.case_id, pseudonym, module_run_id, rule, episode, as_of, *window, sentence, Jsonb(evidence))
        )
        self._entry(case, f"Flag raised: {sentence}", flag_id)
        self._events.append(
            events.indicator_raised(
                flag_id, case.case_id, pseudonym, module_run_id, rule, sentence, as_of.isoformat(), self.now
            )
        )
        change = events_pb2.CASE_CHANGE_OPENED if opened else events_pb2.CASE_CHANGE_FLAG_ADDED
        self._events.append(
            events.case_updated(case.case_id, pseudonym, change, case.staff, case.raised, self.now, flag_id)
        )

    def update_evidence(self, flag: StoredFlag, window_end: date, sentence: str, evidence: dict[str, Any]) -> None:
        """A standing flag's evidence as it is now (a gap grown longer); no event, the flag is the same."""
        self._evidence.append((window_end, sentence, Jsonb(evidence), flag.flag_id))

    def withdraw(self, flag: StoredFlag, reason: str) -> None:
        case = self.by_id.get(flag.case_id)
        if case is None:
            # Staff closed the case with the flag standing: the flag is withdrawn and the closed case says so, but
            # the case stays as staff left it.
            self._withdrawals.append((self.now, reason, flag.flag_id))
            self._entries.append((flag.case_id, self.now, flag.flag_id, f"Flag withdrawn: {reason}"))
            self._touched.add(flag.case_id)
            self._events.append(
                events.indicator_withdrawn(
                    flag.flag_id, flag.case_id, flag.pseudonym, flag.module_run_id, flag.rule, reason, self.now
                )
            )
            return
        case.raised -= 1
        self._withdrawals.append((self.now, reason, flag.flag_id))
        self._entry(case, f"Flag withdrawn: {reason}", flag.flag_id)
        self._events.append(
            events.indicator_withdrawn(
                flag.flag_id, case.case_id, flag.pseudonym, flag.module_run_id, flag.rule, reason, self.now
            )
        )
        self._events.append(
            events.case_updated(
                case.case_id,
                flag.pseudonym,
                events_pb2.CASE_CHANGE_FLAG_WITHDRAWN,
                case.staff,
                case.raised,
                self.now,
                flag.flag_id,
            )
        )
        if case.raised == 0:
            self._closed.append(case.case_id)
            self._entry(case, CLOSED_TEXT)
            self._events.append(
                events.case_updated(
                    case.case_id, flag.pseudonym, events_pb2.CASE_CHANGE_CLOSED, case.staff, 0, self.now
                )
            )
            del self.by_student[case.pseudonym]

    def route(self, case_id: uuid.UUID, pseudonym: str, raised: int, staff: list[ResponsibleStaff]) -> None:
        """Records the staff a case was routed to (the caller has marked it routed)."""
        case = OpenCase(case_id, pseudonym, [s.person_id for s in staff], raised)
        if staff:
            roles = ", ".join(s.relationship.replace("_", " ") for s in staff)
            text = f"Routed to the student's responsible staff ({roles})."
        else:
            text = "Identity names no responsible staff for this student; the case waits for someone to be assigned."
        self._entry(case, text)
        self._events.append(
            events.case_updated(case_id, pseudonym, events_pb2.CASE_CHANGE_ROUTED, case.staff, raised, self.now)
        )

    def flush(self, cursor: psycopg.Cursor[Any]) -> None:
        # Closed first: a student whose case closed may have a new one opened in the same recompute.
        if self._closed:
            cursor.execute("UPDATE cases SET status = 'closed' WHERE case_id = ANY(%s)", (self._closed,))
        cursor.executemany(
            "INSERT INTO cases (case_id, student_pseudonym, status, opened_at, updated_at)"
            " VALUES (%s, %s, 'open', %s, %s)",
            [(c.case_id, c.pseudonym, self.now, self.now) for c in self._new_cases],
        )
        cursor.executemany(
            "INSERT INTO flags (flag_id, case_id, student_pseudonym, module_run_id, rule, episode, status, observed_on,"
            " window_starts_on, window_ends_on, sentence, evidence, raised_at)"
            " VALUES (%s, %s, %s, %s, %s, %s, 'raised', %s, %s, %s, %s, %s, %s)"
            " ON CONFLICT (student_pseudonym, module_run_id, rule, episode) DO UPDATE SET status = 'raised',"
            " case_id = EXCLUDED.case_id, observed_on = EXCLUDED.observed_on,"
            " window_starts_on = EXCLUDED.window_starts_on, window_ends_on = EXCLUDED.window_ends_on,"
            " sentence = EXCLUDED.sentence, evidence = EXCLUDED.evidence, raised_at = EXCLUDED.raised_at,"
            " withdrawn_at = NULL, withdrawn_reason = NULL",
            [(*row, self.now) for row in self._flags],
        )
        cursor.executemany(
            "UPDATE flags SET window_ends_on = %s, sentence = %s, evidence = %s WHERE flag_id = %s", self._evidence
        )
        cursor.executemany(
            "UPDATE flags SET status = 'withdrawn', withdrawn_at = %s, withdrawn_reason = %s WHERE flag_id = %s",
            self._withdrawals,
        )
        cursor.executemany(
            "INSERT INTO case_entries (case_id, at, flag_id, text) VALUES (%s, %s, %s, %s)", self._entries
        )
        if self._touched:
            cursor.execute(
                "UPDATE cases SET updated_at = %s WHERE case_id = ANY(%s)", (self.now, sorted(self._touched))
            )
        if self._events:
            cursor.executemany(
                f"INSERT INTO {EVENT_TABLE} (event_id, routing_key, type_name, schema_version, body)"
                " VALUES (%s, %s, %s, %s, %s) ON CONFLICT (event_id) DO NOTHING",
                [(e.event_id, e.routing_key, e.type_name, e.schema_version, e.body) for e in self._events],
            )
            cursor.execute("NOTIFY tend_outbox")


def mark_routed(cursor: psycopg.Cursor[Any], case_ids: list[uuid.UUID]) -> dict[uuid.UUID, int]:
    """Marks open, unrouted cases routed; returns the ones this call marked (another recompute may have been first),
    each with its count of standing flags."""
    cursor.execute(
        "UPDATE cases SET routed = true WHERE case_id = ANY(%s) AND NOT routed AND status = 'open' RETURNING case_id",
        (case_ids,),
    )
    marked = [row[0] for row in cursor.fetchall()]
    raised: dict[uuid.UUID, int] = defaultdict(int)
    cursor.execute(
        "SELECT case_id, count(*) FROM flags WHERE case_id = ANY(%s) AND status = 'raised' GROUP BY 1", (marked,)
    )
    for case_id, count in cursor.fetchall():
        raised[case_id] = count
    return {case_id: raised[case_id] for case_id in marked}


def add_staff(cursor: psycopg.Cursor[Any], routed: dict[uuid.UUID, list[ResponsibleStaff]]) -> None:
    cursor.executemany(
        "INSERT INTO case_staff (case_id, position, person_id, relationship) VALUES (%s, %s, %s, %s)",
        [
            (case_id, position, s.person_id, s.relationship)
            for case_id, staff in routed.items()
            for position, s in enumerate(staff)
        ],
    )
