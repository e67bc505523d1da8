"""Data access for attendance corrections: hand-written SQL, parameters always bound."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

import psycopg


def claim_batch(
    cursor: psycopg.Cursor[Any], batch_id: uuid.UUID, session_id: uuid.UUID, actor: str, reason: str, entries: int
) -> bool:
    """Stores the batch; False if a batch with this id (idempotency key) was stored before."""
    cursor.execute(
        "INSERT INTO correction_batches (id, session_id, corrected_by, reason, entries) VALUES (%s, %s, %s, %s, %s)"
        " ON CONFLICT (id) DO NOTHING",
        (batch_id, session_id, actor, reason, entries),
    )
    return cursor.rowcount == 1


def find_batch(cursor: psycopg.Cursor[Any], batch_id: uuid.UUID) -> tuple[uuid.UUID, str, int] | None:
    """(session id, corrected by, entries) of a stored batch."""
    cursor.execute("SELECT session_id, corrected_by, entries FROM correction_batches WHERE id = %s", (batch_id,))
    row = cursor.fetchone()
    return (row[0], str(row[1]), int(row[2])) if row is not None else None


def insert_corrections(
    cursor: psycopg.Cursor[Any],
    batch_id: uuid.UUID,
    session_id: uuid.UUID,
    rows: list[tuple[uuid.UUID, str, bool]],
    corrected_at: datetime,
) -> None:
    """`rows`: (correction id, pseudonym, present)."""
    cursor.executemany(
        "INSERT INTO attendance_corrections (id, batch_id, session_id, student_pseudonym, present, corrected_at)"
        " VALUES (%s, %s, %s, %s, %s, %s)",
        [
            (correction_id, batch_id, session_id, pseudonym, present, corrected_at)
            for correction_id, pseudonym, present in rows
        ],
    )
