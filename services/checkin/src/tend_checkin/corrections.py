"""Staff corrections of attendance: each entry is stored, and its attendance event and audit record are put in the
outbox, all in one transaction. Pseudonyms only: names and student numbers are mapped to pseudonyms by the portal
through identity before they reach checkin.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from psycopg_pool import ConnectionPool

from tend_checkin import correction_store, events
from tend_checkin.sessions import TeachingSession
from tend_common.messaging.envelope import envelope
from tend_common.messaging.outbox import add_to_outbox

CORRECT_ACTION = "attendance.correct"


@dataclass(frozen=True)
class Correction:
    pseudonym: str
    present: bool


@dataclass(frozen=True)
class CorrectionBatch:
    """A validated request: one session, one reason, each pseudonym at most once."""

    batch_id: uuid.UUID
    session: TeachingSession
    corrections: list[Correction]
    # A CorrectionReason name, for example "ARRIVED_LATE".
    reason: str


@dataclass(frozen=True)
class CorrectionOutcome:
    recorded: int
    # True when the batch had been applied before (a retried request) and nothing new was done.
    replayed: bool


class BatchKeyReused(Exception):
    """The idempotency key was used before for another session or by another person."""


def _purpose(reason: str, present: bool, session: TeachingSession) -> str:
    mark = "present" if present else "absent"
    return f"correct attendance ({reason}): marked {mark} for teaching session {session.id}"


def record_corrections(
    pool: ConnectionPool, batch: CorrectionBatch, actor_person_id: str, now: datetime
) -> CorrectionOutcome:
    session = batch.session
    with pool.connection() as conn, conn.transaction(), conn.cursor() as cursor:
        if not correction_store.claim_batch(
            cursor, batch.batch_id, session.id, actor_person_id, batch.reason, len(batch.corrections)
        ):
            found = correction_store.find_batch(cursor, batch.batch_id)
            if found is None or found[:2] != (session.id, actor_person_id):
                raise BatchKeyReused
            return CorrectionOutcome(recorded=found[2], replayed=True)
        rows = [(uuid.uuid4(), c.pseudonym, c.present) for c in batch.corrections]
        correction_store.insert_corrections(cursor, batch.batch_id, session.id, rows, now)
        for correction_id, pseudonym, present in rows:
            event = events.attendance_corrected(session, pseudonym, present, correction_id, now)
            routing_key = events.ATTENDANCE_RECORDED if present else events.ATTENDANCE_WITHDRAWN
            add_to_outbox(cursor, envelope(event, routing_key))
            audit = events.staff_action_audit(
                actor_person_id, CORRECT_ACTION, "pseudonym", pseudonym, now, _purpose(batch.reason, present, session)
            )
            add_to_outbox(cursor, envelope(audit, events.AUDIT_RECORDED))
    return CorrectionOutcome(recorded=len(rows), replayed=False)
