"""Break-glass access: a member of staff who needs one student's records outside their scope, now, asks with a
written reason and is granted access for a short time. Every grant is audited ("break_glass.grant") and listed for
the data protection officer's review; access checks honour a grant until it expires, and not after."""

from __future__ import annotations

import logging
import uuid
from datetime import datetime, timedelta

from tend_common.messaging.outbox import add_to_outbox
from tend_identity import audit_events, decisions
from tend_identity.model import Actor, PersonKind, Refused, Resource
from tend_identity.store import Connection
from tend_identity.store import break_glass as grant_store
from tend_identity.store import keys as key_store
from tend_identity.store.break_glass import StoredGrant

log = logging.getLogger(__name__)

GRANT_ACTION = "break_glass.grant"
REVIEW_ACTION = "break_glass.review"
MIN_REASON_LENGTH = 20
MAX_REASON_LENGTH = 1000


class BreakGlassRefused(Refused):
    """Not granted."""


def _student_id(conn: Connection, student: str) -> uuid.UUID | None:
    try:
        candidate: uuid.UUID | None = uuid.UUID(student)
    except ValueError:
        candidate = key_store.person_of_pseudonym(conn, student)
    if candidate is None:
        return None
    row = conn.execute("SELECT kind FROM people WHERE id = %s", (candidate,)).fetchone()
    return candidate if row is not None and row[0] == "student" else None


def request_break_glass(
    conn: Connection,
    actor: Actor,
    student: str,
    reason: str,
    now: datetime,
    lifetime: timedelta,
    request_id: str = "",
) -> StoredGrant:
    """Grants the actor access to the student until now + lifetime, audited in the same transaction. A refusal
    (not staff, or no such student) is audited too; the caller must commit before raising it further."""
    student_id = _student_id(conn, student)
    subject = Resource("person", str(student_id)) if student_id else Resource("student_reference", "unknown")
    refusal = None
    if actor.kind is not PersonKind.STAFF:
        refusal = "Only staff may ask for break-glass access."
    elif student_id is None:
        refusal = "There is no such student."
    if refusal is not None or student_id is None:
        with conn.cursor() as cursor:
            add_to_outbox(cursor, audit_events.recorded(actor, GRANT_ACTION, subject, reason, False, request_id))
        raise BreakGlassRefused(refusal or "There is no such student.")
    grant = StoredGrant(uuid.uuid4(), actor.person_id, student_id, reason, now, now + lifetime)
    grant_store.add_grant(conn, grant)
    with conn.cursor() as cursor:
        add_to_outbox(cursor, audit_events.recorded(actor, GRANT_ACTION, subject, reason, True, request_id))
    log.info(
        "break-glass granted",
        extra={"fields": {"person_id": str(actor.person_id), "student_id": str(student_id), "grant": str(grant.id)}},
    )
    return grant


def grants_for_review(
    conn: Connection, actor: Actor, since: datetime | None, now: datetime, request_id: str = ""
) -> list[StoredGrant]:
    """Every grant since `since`, for the data protection officer; BreakGlassRefused for anyone else."""
    decision = decisions.check_access(
        conn, actor, REVIEW_ACTION, Resource("audit_log", "break_glass"), "break-glass review", request_id, now=now
    )
    if not decision.allowed:
        raise BreakGlassRefused(decision.reason)
    return grant_store.grants_since(conn, since)
