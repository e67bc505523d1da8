"""Data access for teaching sessions: hand-written SQL, parameters always bound."""

from __future__ import annotations

import uuid
from typing import Any

import psycopg

from tend_checkin.sessions import TeachingSession

_COLUMNS = (
    "id, module_run_id, room, starts_at, ends_at, checkin_opens_at, checkin_closes_at, code_secret, opened_by,"
    " allowed_networks, timetable_uid"
)
_SELECT = (
    "SELECT id, module_run_id, room, starts_at, ends_at, checkin_opens_at, checkin_closes_at, code_secret, opened_by,"
    " allowed_networks::text[], timetable_uid FROM teaching_sessions"
)
# A class counts as the one before in the same room if it started earlier and ended no more than this before.
_BACK_TO_BACK_GAP = "30 minutes"


def insert_session(cursor: psycopg.Cursor[Any], session: TeachingSession) -> None:
    cursor.execute(
        f"INSERT INTO teaching_sessions ({_COLUMNS}) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s::cidr[], %s)",
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
            list(session.allowed_networks),
            session.timetable_uid,
        ),
    )


def find_session(conn: psycopg.Connection[Any], session_id: uuid.UUID) -> TeachingSession | None:
    row = conn.execute(f"{_SELECT} WHERE id = %s", (session_id,)).fetchone()
    return _session(row) if row is not None else None


def find_previous_in_room(conn: psycopg.Connection[Any], session: TeachingSession) -> TeachingSession | None:
    """The class in the same room just before `session` (back to back, or overlapping its start), if any."""
    row = conn.execute(
        f"{_SELECT} WHERE lower(room) = lower(%s) AND starts_at < %s AND ends_at >= %s - interval '{_BACK_TO_BACK_GAP}'"
        " AND id <> %s ORDER BY starts_at DESC LIMIT 1",
        (session.room, session.starts_at, session.starts_at, session.id),
    ).fetchone()
    return _session(row) if row is not None else None


def _session(row: tuple[Any, ...]) -> TeachingSession:
    (id_, module_run_id, room, starts_at, ends_at, opens_at, closes_at, secret, opened_by, networks, uid) = row
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
        allowed_networks=tuple(networks or ()),
        timetable_uid=uid,
    )


def list_sessions(conn: psycopg.Connection[Any], module_run_id: str) -> list[TeachingSession]:
    rows = conn.execute(f"{_SELECT} WHERE module_run_id = %s ORDER BY starts_at, id", (module_run_id,)).fetchall()
    return [_session(row) for row in rows]


def find_by_timetable_uids(cursor: psycopg.Cursor[Any], uids: list[str]) -> dict[str, TeachingSession]:
    """Sessions imported before from these UIDs, locked until the transaction ends so two imports do not race."""
    cursor.execute(f"{_SELECT} WHERE timetable_uid = ANY(%s) FOR UPDATE", (uids,))
    return {str(session.timetable_uid): session for session in map(_session, cursor.fetchall())}


def update_schedule(cursor: psycopg.Cursor[Any], session: TeachingSession) -> None:
    """Stores a re-imported session's module run, room, times and network ranges (its id and code secret stay)."""
    cursor.execute(
        "UPDATE teaching_sessions SET module_run_id = %s, room = %s, starts_at = %s, ends_at = %s,"
        " checkin_opens_at = %s, checkin_closes_at = %s, allowed_networks = %s::cidr[] WHERE id = %s",
        (
            session.module_run_id,
            session.room,
            session.starts_at,
            session.ends_at,
            session.checkin_opens_at,
            session.checkin_closes_at,
            list(session.allowed_networks),
            session.id,
        ),
    )
