"""Data access for outgoing messages and their delivery attempts."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg

from tend_common.messaging.outbox import add_to_outbox
from tend_notify.events import StatusChange, delivery_updated

# Statuses after which a message is never sent again, and its text is no longer needed.
FINAL = ("sent", "bounced", "failed")
DUE = ("queued", "deferred")

_COLUMNS = (
    "request_id, kind, institution_id, student_pseudonym, recipient_person_id, sender_person_id, case_id,"
    " template_name, subject, body, status, reason, tries, smtp_attempts, next_attempt_at, updated_at"
)


@dataclass(frozen=True)
class Message:
    request_id: uuid.UUID
    kind: str
    institution_id: str
    student_pseudonym: str | None
    recipient_person_id: str | None
    sender_person_id: str | None
    case_id: str
    template_name: str
    subject: str | None
    body: str | None
    status: str
    reason: str
    tries: int
    smtp_attempts: int
    next_attempt_at: datetime
    updated_at: datetime


def insert_message(
    cursor: psycopg.Cursor[Any],
    *,
    request_id: uuid.UUID,
    kind: str,
    institution_id: str,
    template_name: str,
    subject: str,
    body: str,
    not_before: datetime,
    student_pseudonym: str | None = None,
    recipient_person_id: str | None = None,
    sender_person_id: str | None = None,
    case_id: str = "",
) -> bool:
    """Queues a message unless one with this request id exists; True when queued now."""
    cursor.execute(
        "INSERT INTO messages (request_id, kind, institution_id, student_pseudonym, recipient_person_id,"
        " sender_person_id, case_id, template_name, subject, body, status, next_attempt_at)"
        " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, 'queued', %s) ON CONFLICT (request_id) DO NOTHING",
        (
            request_id,
            kind,
            institution_id,
            student_pseudonym,
            recipient_person_id,
            sender_person_id,
            case_id,
            template_name,
            subject,
            body,
            not_before,
        ),
    )
    return cursor.rowcount == 1


def find_message(conn: psycopg.Connection[Any], request_id: uuid.UUID) -> Message | None:
    row = conn.execute(f"SELECT {_COLUMNS} FROM messages WHERE request_id = %s", (request_id,)).fetchone()
    return Message(*row) if row else None


def lock_due(cursor: psycopg.Cursor[Any], now: datetime, limit: int) -> list[Message]:
    """Up to `limit` messages due longest, locked for this transaction; messages other threads hold are skipped."""
    cursor.execute(
        f"SELECT {_COLUMNS} FROM messages WHERE status IN ('queued', 'deferred') AND next_attempt_at <= %s"
        " ORDER BY next_attempt_at LIMIT %s FOR UPDATE SKIP LOCKED",
        (now, limit),
    )
    return [Message(*row) for row in cursor.fetchall()]


def lock_message(cursor: psycopg.Cursor[Any], request_id: uuid.UUID) -> Message | None:
    cursor.execute(f"SELECT {_COLUMNS} FROM messages WHERE request_id = %s FOR UPDATE", (request_id,))
    row = cursor.fetchone()
    return Message(*row) if row else None


def postpone(cursor: psycopg.Cursor[Any], request_id: uuid.UUID, until: datetime, reason: str) -> None:
    """Holds a message without counting a try (quiet hours, the global rate limit)."""
    cursor.execute(
        "UPDATE messages SET next_attempt_at = %s, reason = %s, updated_at = now() WHERE request_id = %s",
        (until, reason, request_id),
    )


def set_status(
    cursor: psycopg.Cursor[Any],
    message: Message,
    status: str,
    reason: str = "",
    next_attempt_at: datetime | None = None,
    tries: int | None = None,
) -> None:
    """Changes a message's status and publishes the change to the case, in the caller's transaction. A final status
    (or an uncertain delivery resolved later) removes the message's text, which is then no longer needed."""
    tries = message.tries if tries is None else tries
    clear_text = status in FINAL
    cursor.execute(
        "UPDATE messages SET status = %s, reason = %s, tries = %s,"
        " next_attempt_at = COALESCE(%s, next_attempt_at), updated_at = now(),"
        " subject = CASE WHEN %s THEN NULL ELSE subject END, body = CASE WHEN %s THEN NULL ELSE body END"
        " WHERE request_id = %s",
        (status, reason, tries, next_attempt_at, clear_text, clear_text, message.request_id),
    )
    if message.kind == "enquiry" and status != "sending":
        change = StatusChange(
            request_id=message.request_id,
            case_id=message.case_id,
            student_pseudonym=message.student_pseudonym or "",
            status=status,
            attempts=message.smtp_attempts,
            reason=reason,
            next_attempt_at=next_attempt_at if status == "deferred" else None,
            sequence=tries,
        )
        add_to_outbox(cursor, delivery_updated(change))


def start_attempts(cursor: psycopg.Cursor[Any], messages: list[Message], owner_key: int) -> list[int]:
    """Records SMTP transactions before they start, one statement for them all: each message is 'sending' and its
    attempt has no outcome. Returns the attempt numbers, in the order of `messages`."""
    attempts = [message.smtp_attempts + 1 for message in messages]
    if messages:
        cursor.execute(
            "WITH started AS (INSERT INTO delivery_attempts (request_id, attempt, owner_key, phase)"
            " SELECT request_id, attempt, %s, 'started'"
            " FROM unnest(%s::uuid[], %s::integer[]) AS t (request_id, attempt)"
            " RETURNING request_id, attempt)"
            " UPDATE messages SET status = 'sending', tries = tries + 1, smtp_attempts = started.attempt,"
            " updated_at = now() FROM started WHERE messages.request_id = started.request_id",
            (owner_key, [message.request_id for message in messages], attempts),
        )
    return attempts


def release_attempt(cursor: psycopg.Cursor[Any], message: Message, attempt: int) -> None:
    """Takes back an attempt recorded but never begun (the process is stopping): the message is as it was before,
    due again, as if never taken. Nothing happens if the attempt went further or was resolved elsewhere."""
    cursor.execute(
        "WITH released AS (DELETE FROM delivery_attempts WHERE request_id = %s AND attempt = %s"
        " AND phase = 'started' AND outcome IS NULL RETURNING request_id)"
        " UPDATE messages SET status = %s, tries = %s, smtp_attempts = %s"
        " WHERE request_id = (SELECT request_id FROM released) AND status = 'sending'",
        (message.request_id, attempt, message.status, message.tries, message.smtp_attempts),
    )


def mark_data_sent(conn: psycopg.Connection[Any], request_id: uuid.UUID, attempt: int) -> bool:
    """Records, just before the final "." of DATA, that the message is being handed over. False when the attempt
    was already resolved by another process (this one was taken for dead): the caller must then not hand it over."""
    # One statement committed on its own: in autocommit mode that is one round trip, not BEGIN, UPDATE, COMMIT.
    conn.autocommit = True
    try:
        row = conn.execute(
            "UPDATE delivery_attempts SET phase = 'data_sent'"
            " WHERE request_id = %s AND attempt = %s AND outcome IS NULL RETURNING attempt",
            (request_id, attempt),
        ).fetchone()
    finally:
        conn.autocommit = False
    return row is not None


def finish_attempt(
    cursor: psycopg.Cursor[Any], request_id: uuid.UUID, attempt: int, outcome: str, code: int | None, enhanced: str
) -> Message | None:
    """Records an attempt's outcome and returns its message, locked. An attempt another process already resolved
    (taking this one for dead) keeps that resolution, unless it was "uncertain" and this is what actually happened;
    then None is returned and nothing changes."""
    cursor.execute(
        "WITH finished AS (UPDATE delivery_attempts SET outcome = %s, smtp_code = %s, enhanced_code = %s,"
        " finished_at = now() WHERE request_id = %s AND attempt = %s"
        " AND (outcome IS NULL OR (outcome = 'uncertain' AND %s <> 'uncertain')) RETURNING request_id)"
        f" SELECT {_COLUMNS} FROM messages WHERE request_id = (SELECT request_id FROM finished) FOR UPDATE",
        (outcome, code, enhanced, request_id, attempt, outcome),
    )
    row = cursor.fetchone()
    return Message(*row) if row else None


def unfinished_owners(conn: psycopg.Connection[Any], own_key: int) -> list[int]:
    rows = conn.execute(
        "SELECT DISTINCT owner_key FROM delivery_attempts WHERE outcome IS NULL AND owner_key <> %s", (own_key,)
    ).fetchall()
    return [int(row[0]) for row in rows]


def lock_unfinished_attempts(cursor: psycopg.Cursor[Any], owner_key: int) -> list[tuple[uuid.UUID, int, str]]:
    cursor.execute(
        "SELECT request_id, attempt, phase FROM delivery_attempts WHERE owner_key = %s AND outcome IS NULL"
        " ORDER BY request_id FOR UPDATE",
        (owner_key,),
    )
    return [(row[0], int(row[1]), str(row[2])) for row in cursor.fetchall()]
