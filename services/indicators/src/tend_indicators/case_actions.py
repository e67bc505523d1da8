"""What staff do about a case: a note, a contact, a referral, or closing it with an outcome.

Each action becomes a line of the case's history naming who recorded it, publishes `CaseUpdated` through the
case-event outbox and an audit record through the shared outbox, all in one transaction; the caller's request id
makes a repeat record nothing new. Closing a case closes it for good: its standing flags stay as they are (a flag
found again is the same flag, and raises nothing), and a new flag for the student afterwards opens a new case.
"""

from __future__ import annotations

import enum
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg
from tend.indicators.v1 import events_pb2

from tend_common.messaging.outbox import add_to_outbox
from tend_indicators import case_store, events
from tend_indicators.case_event_outbox import add_case_event
from tend_indicators.case_writes import CASE_WRITE_LOCK

MAX_NOTE_CHARS = 2000
# Fixed for ever: the event id of an action's CaseUpdated is derived from it and the caller's request id.
ACTION_EVENT_NAMESPACE = uuid.UUID("5c1f0d7e-2b9a-4e63-8f47-a3d6e1c2b905")
PURPOSE = "engagement support"


class ActionKind(enum.Enum):
    NOTE = "note"
    CONTACTED = "contacted"
    REFERRED = "referred"
    CLOSE = "close"

    @property
    def heading(self) -> str:
        return _HEADINGS[self]

    @property
    def audit_action(self) -> str:
        return "indicators.case.close" if self is ActionKind.CLOSE else "indicators.case.record_action"


_HEADINGS = {
    ActionKind.NOTE: "Note",
    ActionKind.CONTACTED: "Contacted the student",
    ActionKind.REFERRED: "Referred the student",
    ActionKind.CLOSE: "Case closed by staff, with the outcome",
}


@dataclass(frozen=True)
class CaseAction:
    request_id: uuid.UUID
    case_id: uuid.UUID
    person_id: str
    kind: ActionKind
    note: str


class ActionRefused(Exception):
    """The action cannot be recorded as asked; the message is safe to show to the person."""


class CaseClosed(ActionRefused):
    pass


class RequestIdReused(ActionRefused):
    pass


def note_problem(note: str) -> str | None:
    """Why a note cannot be kept, or None."""
    if not note.strip():
        return "note is required: say what was done, in a few words"
    if len(note) > MAX_NOTE_CHARS:
        return f"note is too long: at most {MAX_NOTE_CHARS} characters"
    if "\x00" in note:
        return "note must not contain NUL characters"
    return None


def case_student(conn: psycopg.Connection[Any], case_id: uuid.UUID) -> str | None:
    """The pseudonym of the case's student, or None if there is no such case."""
    row = conn.execute("SELECT student_pseudonym FROM cases WHERE case_id = %s", (case_id,)).fetchone()
    return str(row[0]) if row else None


def record(cursor: psycopg.Cursor[Any], action: CaseAction, pseudonym: str, now: datetime) -> bool:
    """Records the action once; returns False when this request id was recorded before (a repeat). Raises
    RequestIdReused for the same request id with another action, and CaseClosed for a new action on a closed case."""
    # Case writes take turns with a recompute's writes, so a case is never closed under a flag being added to it.
    cursor.execute("SELECT pg_advisory_xact_lock(%s)", (CASE_WRITE_LOCK,))
    cursor.execute(
        "SELECT case_id, person_id, kind, note FROM case_actions WHERE request_id = %s", (action.request_id,)
    )
    before = cursor.fetchone()
    if before is not None:
        if tuple(before) != (action.case_id, action.person_id, action.kind.value, action.note):
            raise RequestIdReused("request_id was already used for a different action; use a new one")
        return False
    cursor.execute("SELECT status FROM cases WHERE case_id = %s FOR UPDATE", (action.case_id,))
    row = cursor.fetchone()
    if row is None or row[0] != "open":
        raise CaseClosed("The case is closed; nothing more can be recorded on it.")
    cursor.execute(
        "INSERT INTO case_actions (request_id, case_id, person_id, kind, note, at) VALUES (%s, %s, %s, %s, %s, %s)",
        (action.request_id, action.case_id, action.person_id, action.kind.value, action.note, now),
    )
    case_store.add_entry(
        cursor, action.case_id, f"{action.kind.heading}: {action.note.strip()}", now, person_id=action.person_id
    )
    change = events_pb2.CASE_CHANGE_ACTION_RECORDED
    if action.kind is ActionKind.CLOSE:
        cursor.execute(
            "UPDATE cases SET status = 'closed', outcome = %s WHERE case_id = %s", (action.note.strip(), action.case_id)
        )
        change = events_pb2.CASE_CHANGE_CLOSED_BY_STAFF
    cursor.execute("SELECT person_id FROM case_staff WHERE case_id = %s ORDER BY position", (action.case_id,))
    staff = [str(r[0]) for r in cursor.fetchall()]
    cursor.execute("SELECT count(*) FROM flags WHERE case_id = %s AND status = 'raised'", (action.case_id,))
    counted = cursor.fetchone()
    add_case_event(
        cursor,
        events.case_updated(
            action.case_id,
            pseudonym,
            change,
            staff,
            int(counted[0]) if counted else 0,
            now,
            event_id=str(uuid.uuid5(ACTION_EVENT_NAMESPACE, str(action.request_id))),
            request_id=str(action.request_id),
        ),
    )
    add_to_outbox(
        cursor,
        events.staff_action_audit(
            action.person_id, action.kind.audit_action, pseudonym, PURPOSE, str(action.request_id), now
        ),
    )
    return True
