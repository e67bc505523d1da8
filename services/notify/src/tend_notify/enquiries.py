"""Accepting an enquiry: recorded once per request id, and announced through the outbox in the same transaction."""

from __future__ import annotations

import hashlib
import json
import uuid
from typing import Any

import psycopg
from psycopg_pool import ConnectionPool

from tend_common.messaging.outbox import add_to_outbox
from tend_notify.events import EnquiryRequest, enquiry_requested


class RequestConflict(Exception):
    """The request id was used before for a different enquiry."""


def fingerprint(request: EnquiryRequest, as_asked: tuple[str, str]) -> str:
    """A digest of what was asked (not the text itself), to tell a repeat from a reused request id. `as_asked` is
    the subject and body as the caller sent them (empty for the template's)."""
    content = [
        request.institution_id,
        request.student_pseudonym,
        request.case_id,
        request.sender_person_id,
        request.template_name,
        *as_asked,
    ]
    return hashlib.sha256(json.dumps(content).encode()).hexdigest()


def known_status(conn: psycopg.Connection[Any], request_id: uuid.UUID, digest: str) -> str | None:
    """The status of an enquiry accepted before with this id, or None if there is none; RequestConflict when the id
    was used for something else."""
    row = conn.execute(
        "SELECT r.fingerprint, m.status FROM enquiry_requests r LEFT JOIN messages m USING (request_id)"
        " WHERE r.request_id = %s",
        (request_id,),
    ).fetchone()
    if row is None:
        return None
    if row[0] != digest:
        raise RequestConflict
    return str(row[1] or "queued")


def accept(pool: ConnectionPool, request: EnquiryRequest, digest: str, trace_id: str = "") -> str:
    """Records the request and its EnquiryRequested event together; returns its status (a repeat returns the status
    of the first)."""
    with pool.connection() as conn:
        with conn.transaction(), conn.cursor() as cur:
            cur.execute(
                "INSERT INTO enquiry_requests (request_id, fingerprint, sender_person_id, student_pseudonym, case_id,"
                " requested_at) VALUES (%s, %s, %s, %s, %s, %s) ON CONFLICT (request_id) DO NOTHING",
                (
                    request.request_id,
                    digest,
                    request.sender_person_id,
                    request.student_pseudonym,
                    request.case_id,
                    request.requested_at,
                ),
            )
            if cur.rowcount == 1:
                add_to_outbox(cur, enquiry_requested(request, trace_id))
                return "queued"
        status = known_status(conn, request.request_id, digest)
    return status or "queued"


def sender_and_student(conn: psycopg.Connection[Any], request_id: uuid.UUID) -> tuple[str, str] | None:
    """Who asked for an enquiry and to whom, for deciding who may see or act on it."""
    row = conn.execute(
        "SELECT sender_person_id, student_pseudonym FROM enquiry_requests WHERE request_id = %s", (request_id,)
    ).fetchone()
    return (str(row[0]), str(row[1])) if row else None
