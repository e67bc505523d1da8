"""Data access for follow-ups: started when an enquiry is sent, stopped by the case, and described for its status."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

import psycopg

ENGAGEMENT_RESUMED = "engagement_resumed"
CASE_CLOSED = "case_closed"

# Where an enquiry's follow-up stands, in the words GetEnquiryStatus uses.
_STOPPED = {
    ENGAGEMENT_RESUMED: "reminders stopped: the student engaged again",
    CASE_CLOSED: "reminders stopped: the case was closed",
}


def start(cursor: psycopg.Cursor[Any], request_id: uuid.UUID, sent_at: datetime) -> None:
    """Starts the follow-up of a sent enquiry (once). An enquiry of a case already closed starts it stopped."""
    cursor.execute(
        "INSERT INTO follow_ups (request_id, institution_id, student_pseudonym, case_id, sender_person_id, sent_at,"
        " stopped_at, stopped_reason)"
        " SELECT m.request_id, m.institution_id, m.student_pseudonym, m.case_id, m.sender_person_id, %s,"
        " CASE WHEN c.case_id IS NULL THEN NULL ELSE %s::timestamptz END,"
        " CASE WHEN c.case_id IS NULL THEN NULL ELSE %s END"
        " FROM messages m LEFT JOIN closed_cases c ON c.case_id = m.case_id AND m.case_id <> ''"
        " WHERE m.request_id = %s AND m.kind = 'enquiry' ON CONFLICT (request_id) DO NOTHING",
        (sent_at, sent_at, CASE_CLOSED, request_id),
    )


def stop_for_case(cursor: psycopg.Cursor[Any], case_id: str, reason: str, at: datetime) -> int:
    """Stops the pending reminders and escalations of the case's enquiries; returns how many follow-ups stopped.

    Engagement resumed stops the follow-ups of enquiries sent by then (a later enquiry is followed up as usual); a
    closed case stops them all, including those of enquiries sent after it closed."""
    if reason == CASE_CLOSED:
        cursor.execute(
            "INSERT INTO closed_cases (case_id, closed_at) VALUES (%s, %s) ON CONFLICT (case_id) DO NOTHING",
            (case_id, at),
        )
    cursor.execute(
        "UPDATE follow_ups SET stopped_at = %s, stopped_reason = %s"
        " WHERE case_id = %s AND answered_at IS NULL AND stopped_at IS NULL AND escalated_at IS NULL"
        " AND (%s OR sent_at <= %s)",
        (at, reason, case_id, reason == CASE_CLOSED, at),
    )
    return cursor.rowcount


def describe(conn: psycopg.Connection[Any], request_id: uuid.UUID) -> str:
    """Where the enquiry's follow-up stands, in plain words; empty before it is sent."""
    row = conn.execute(
        "SELECT answered_at IS NOT NULL, stopped_reason, reminded_at IS NOT NULL, escalated_at IS NOT NULL"
        " FROM follow_ups WHERE request_id = %s",
        (request_id,),
    ).fetchone()
    if row is None:
        return ""
    answered, stopped_reason, reminded, escalated = row
    if answered:
        return "answered: no reminders"
    if stopped_reason:
        return _STOPPED[str(stopped_reason)]
    if escalated:
        return "no answer: the sender was reminded and the escalation contact told"
    if reminded:
        return "no answer yet: the sender was reminded; the escalation contact is told if none comes"
    return "no answer yet: the sender is reminded if none comes"
