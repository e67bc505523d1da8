"""Opening a teaching session: the session and its audit record are stored in one transaction."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from psycopg_pool import ConnectionPool

from tend_checkin import events, session_store
from tend_checkin.sessions import TeachingSession, plan_session
from tend_common.messaging.envelope import envelope
from tend_common.messaging.outbox import add_to_outbox

OPEN_PURPOSE = "open a teaching session for check-in"


@dataclass(frozen=True)
class SessionRequest:
    """A validated request to open a session."""

    module_run_id: str
    room: str
    starts_at: datetime
    duration: timedelta
    allowed_networks: tuple[str, ...] = ()


def open_session(
    pool: ConnectionPool, request: SessionRequest, actor_person_id: str, opens_before: timedelta, now: datetime
) -> TeachingSession:
    """Creates the session and, in the same transaction, puts its audit event in the outbox: either both are
    stored or neither is, so no session exists without its audit record."""
    session = plan_session(
        request.module_run_id,
        request.room,
        request.starts_at,
        request.duration,
        opens_before,
        actor_person_id,
        allowed_networks=request.allowed_networks,
    )
    audit = events.session_opened_audit(session, actor_person_id, now, OPEN_PURPOSE)
    with pool.connection() as conn, conn.transaction(), conn.cursor() as cursor:
        session_store.insert_session(cursor, session)
        add_to_outbox(cursor, envelope(audit, events.AUDIT_RECORDED))
    return session
