"""Follow-up: when a student has not answered an enquiry, the sender is reminded, and later the escalation contact.

Reminders are gathered into one digest per member of staff per day, sent at the institution's digest hour: "three of
your students may need a word". A digest names no student anywhere (the portal shows who, to whom identity allows);
its subject could not, since the digest templates have no placeholder for a student's name.
"""

from __future__ import annotations

import logging
import uuid
import zoneinfo
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime, time, timedelta
from typing import Any

import psycopg
from psycopg_pool import ConnectionPool

from tend_common.messaging.outbox import add_to_outbox
from tend_notify import message_store, template_store
from tend_notify.contacts import ContactDirectory, ContactsUnavailable, ContactUnknown
from tend_notify.events import derived_id, reminder_due
from tend_notify.metrics import FOLLOW_UPS
from tend_notify.settings import Settings
from tend_notify.templates import (
    ESCALATION,
    ESCALATION_TEMPLATE,
    REMINDER,
    REMINDER_TEMPLATE,
    Institution,
    count_words,
    fill,
)

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class OpenEnquiry:
    request_id: uuid.UUID
    student_pseudonym: str
    case_id: str
    sender_person_id: str
    sent_at: datetime


def last_digest_time(now: datetime, time_zone: str, digest_hour: int) -> datetime:
    """The most recent digest moment at or before `now`: today's digest hour in the zone, or yesterday's."""
    zone = zoneinfo.ZoneInfo(time_zone)
    local = now.astimezone(zone)
    today = datetime.combine(local.date(), time(digest_hour), tzinfo=zone)
    return (
        today if local >= today else datetime.combine(local.date() - timedelta(days=1), time(digest_hour), tzinfo=zone)
    )


class FollowUps:
    def __init__(self, pool: ConnectionPool, settings: Settings, contacts: ContactDirectory) -> None:
        self._pool = pool
        self._settings = settings
        self._contacts = contacts

    def run(self, now: datetime) -> int:
        """Queues the digests due by the last digest moment of each institution; returns how many were queued."""
        with self._pool.connection() as conn:
            institution_ids = [str(row[0]) for row in conn.execute("SELECT id FROM institutions ORDER BY id")]
        queued = 0
        for institution_id in institution_ids:
            with self._pool.connection() as conn:
                institution = template_store.find_institution(conn, institution_id)
            if institution is None:
                continue
            cutoff = last_digest_time(now, institution.time_zone, self._settings.digest_hour)
            queued += self._remind(institution, cutoff, now)
            queued += self._escalate(institution, cutoff, now)
        return queued

    def _remind(self, institution: Institution, cutoff: datetime, now: datetime) -> int:
        sent_before = cutoff - timedelta(days=self._settings.reminder_after_days)
        with self._pool.connection() as conn, conn.transaction(), conn.cursor() as cur:
            due = _lock_open(cur, institution.id, "reminded_at", sent_before)
            by_sender: dict[str, list[OpenEnquiry]] = defaultdict(list)
            for enquiry in due:
                by_sender[enquiry.sender_person_id].append(enquiry)
            for sender, enquiries in by_sender.items():
                _queue_digest(cur, conn, institution, REMINDER, REMINDER_TEMPLATE, sender, enquiries, now)
            _mark(cur, "reminded_at", [e.request_id for e in due], now)
        return len(by_sender)

    def _escalate(self, institution: Institution, cutoff: datetime, now: datetime) -> int:
        sent_before = cutoff - timedelta(days=self._settings.escalation_after_days)
        with self._pool.connection() as conn, conn.transaction(), conn.cursor() as cur:
            due = _lock_open(cur, institution.id, "escalated_at", sent_before)
            by_contact: dict[str, list[OpenEnquiry]] = defaultdict(list)
            settled: list[uuid.UUID] = []
            for enquiry in due:
                try:
                    contact = self._escalation_contact(enquiry)
                except ContactsUnavailable:
                    continue  # asked again at the next run
                settled.append(enquiry.request_id)
                if contact is None:
                    log.warning("no escalation contact", extra={"fields": {"request_id": str(enquiry.request_id)}})
                    continue
                by_contact[contact].append(enquiry)
            for contact, enquiries in by_contact.items():
                _queue_digest(cur, conn, institution, ESCALATION, ESCALATION_TEMPLATE, contact, enquiries, now)
            _mark(cur, "escalated_at", settled, now)
        return len(by_contact)

    def _escalation_contact(self, enquiry: OpenEnquiry) -> str | None:
        """The first responsible member of staff other than the sender, in identity's routing order."""
        try:
            staff = self._contacts.responsible_staff(enquiry.student_pseudonym)
        except ContactUnknown:
            return None
        return next((person for person, _relationship in staff if person != enquiry.sender_person_id), None)


def _lock_open(
    cur: psycopg.Cursor[Any], institution_id: str, stage_column: str, sent_before: datetime
) -> list[OpenEnquiry]:
    cur.execute(
        "SELECT request_id, student_pseudonym, case_id, sender_person_id, sent_at FROM follow_ups"
        f" WHERE institution_id = %s AND answered_at IS NULL AND stopped_at IS NULL AND {stage_column} IS NULL"
        " AND sent_at <= %s"
        " ORDER BY request_id FOR UPDATE SKIP LOCKED",
        (institution_id, sent_before),
    )
    return [OpenEnquiry(*row) for row in cur.fetchall()]


def _mark(cur: psycopg.Cursor[Any], stage_column: str, request_ids: list[uuid.UUID], now: datetime) -> None:
    if request_ids:
        cur.execute(f"UPDATE follow_ups SET {stage_column} = %s WHERE request_id = ANY(%s)", (now, request_ids))


def _queue_digest(
    cur: psycopg.Cursor[Any],
    conn: psycopg.Connection[Any],
    institution: Institution,
    kind: str,
    template_name: str,
    recipient: str,
    enquiries: list[OpenEnquiry],
    now: datetime,
) -> None:
    template = template_store.find_template(conn, institution.id, template_name)
    if template is None or template.kind != kind:
        log.warning("no digest template", extra={"fields": {"institution": institution.id, "template": template_name}})
        return
    counts = {"count": str(len(enquiries)), "count_words": count_words(len(enquiries))}
    # The digest's id follows from what it covers, so the same digest is never queued twice.
    request_id = uuid.UUID(derived_id("digest", kind, recipient, *sorted(str(e.request_id) for e in enquiries)))
    message_store.insert_message(
        cur,
        request_id=request_id,
        kind=kind,
        institution_id=institution.id,
        template_name=template_name,
        subject=fill(template.subject, counts),
        body=fill(template.body, counts),
        not_before=now,
        recipient_person_id=recipient,
    )
    for enquiry in enquiries:
        add_to_outbox(
            cur,
            reminder_due(
                enquiry.request_id, enquiry.case_id, enquiry.student_pseudonym, kind, recipient, enquiry.sent_at
            ),
        )
    FOLLOW_UPS.labels(kind).inc()
    log.info("follow-up digest queued", extra={"fields": {"request_id": str(request_id), "kind": kind}})
