"""Data access for teaching sessions: hand-written SQL, parameters always bound."""

from __future__ import annotations

import uuid
from typing import Any

import psycopg

from tend_checkin.sessions import TeachingSession

_COLUMNS = "id, module_run_id, room, starts_at, ends_at, checkin_opens_at, checkin_closes_at, code_secret, opened_by"


def insert_session(cursor: psycopg.Cursor[Any], session: TeachingSession) -> None:
    cursor.execute(
        f"INSERT INTO teaching_sessions ({_COLUMNS}) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)",
        (
            session.id,
            session.module_run_id,
            session.room,
            session.starts_at,
            session.ends_at,
            session.checkin_opens_at,
            session.checkin_closes_at,
            session.code_secret,
            session.opened_by,
        ),
    )


def find_session(conn: psycopg.Connection[Any], session_id: uuid.UUID) -> TeachingSession | None:
    row = conn.execute(f"SELECT {_COLUMNS} FROM teaching_sessions WHERE id = %s", (session_id,)).fetchone()
    if row is None:
        return None
    (id_, module_run_id, room, starts_at, ends_at, opens_at, closes_at, secret, opened_by) = row
    return TeachingSession(
        id=id_,
        module_run_id=module_run_id,
        room=room,
        starts_at=starts_at,
        ends_at=ends_at,
        checkin_opens_at=opens_at,
        checkin_closes_at=closes_at,
        code_secret=bytes(secret),
        opened_by=opened_by,
    )
