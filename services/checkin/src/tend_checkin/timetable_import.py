"""Importing a timetable: every session of a checked file is created or updated in one transaction, by event UID.

A re-import of the same file changes nothing; a changed time or room updates the session in place (its id and code
secret stay, so presenter links keep working). Each created or changed session gets an audit record in the outbox,
in the same transaction.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from datetime import datetime, timedelta

from psycopg_pool import ConnectionPool

from tend_checkin import events, session_store
from tend_checkin.sessions import TeachingSession, plan_session
from tend_checkin.timetable import LineError, ParsedTimetable, TimetableRejected
from tend_common.messaging.envelope import envelope
from tend_common.messaging.outbox import add_to_outbox

IMPORT_PURPOSE = "import a module run's timetable for check-in"


@dataclass(frozen=True)
class ImportResult:
    created: int
    updated: int
    unchanged: int
    skipped: int
    # Every session the file describes, in file order, as now stored.
    sessions: list[TeachingSession]


def _schedule(session: TeachingSession) -> tuple[object, ...]:
    return (
        session.module_run_id,
        session.room,
        session.starts_at,
        session.ends_at,
        session.checkin_opens_at,
        session.checkin_closes_at,
        session.allowed_networks,
    )


def import_timetable(
    pool: ConnectionPool, parsed: ParsedTimetable, actor_person_id: str, opens_before: timedelta, now: datetime
) -> ImportResult:
    """Raises TimetableRejected (and changes nothing) if a UID already belongs to another module run's session."""
    created = updated = unchanged = 0
    stored: list[TeachingSession] = []
    with pool.connection() as conn, conn.transaction(), conn.cursor() as cursor:
        existing = session_store.find_by_timetable_uids(cursor, [entry.uid for entry in parsed.entries])
        clashes = [
            LineError(entry.line, "this UID belongs to a session of another module run")
            for entry in parsed.entries
            if entry.uid in existing and existing[entry.uid].module_run_id != entry.module_run_id
        ]
        if clashes:
            raise TimetableRejected(clashes)
        for entry in parsed.entries:
            planned = plan_session(
                entry.module_run_id,
                entry.room,
                entry.starts_at,
                entry.ends_at - entry.starts_at,
                opens_before,
                actor_person_id,
                allowed_networks=entry.allowed_networks,
                timetable_uid=entry.uid,
            )
            old = existing.get(entry.uid)
            if old is None:
                session_store.insert_session(cursor, planned)
                action, session = "teaching_session.create", planned
                created += 1
            elif _schedule(old) == _schedule(planned):
                stored.append(old)
                unchanged += 1
                continue
            else:
                session = dataclasses.replace(planned, id=old.id, code_secret=old.code_secret, opened_by=old.opened_by)
                session_store.update_schedule(cursor, session)
                action = "teaching_session.update"
                updated += 1
            stored.append(session)
            audit = events.staff_action_audit(
                actor_person_id, action, "teaching_session", str(session.id), now, IMPORT_PURPOSE
            )
            add_to_outbox(cursor, envelope(audit, events.AUDIT_RECORDED))
    return ImportResult(created, updated, unchanged, parsed.skipped, stored)
