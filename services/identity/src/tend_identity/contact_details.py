"""Contact details for addressing a message at send time (notify keeps no profile): a student's by pseudonym, a
member of staff's by person id. Every look-up is audited before the details are returned."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from tend_common.messaging.outbox import add_to_outbox
from tend_identity import audit_events
from tend_identity.model import Actor, NotFoundError, PersonKind, Resource
from tend_identity.store import Connection
from tend_identity.store import keys as key_store

ACTION = "contact_details.read"


@dataclass(frozen=True)
class ContactDetails:
    preferred_name: str
    email: str


def contact_details(
    conn: Connection,
    pseudonym: str | None,
    person_id: uuid.UUID | None,
    purpose: str,
    on_behalf_of: uuid.UUID | None,
    calling_service: str,
    request_id: str = "",
) -> ContactDetails:
    """NotFoundError (after auditing the refusal) for an unknown pseudonym, or a person id that is not staff."""
    wanted_kind = "student" if pseudonym is not None else "staff"
    target = key_store.person_of_pseudonym(conn, pseudonym) if pseudonym is not None else person_id
    row = (
        conn.execute("SELECT kind, display_name, email FROM people WHERE id = %s", (target,)).fetchone()
        if target is not None
        else None
    )
    found = row is not None and row[0] == wanted_kind
    subject = Resource("person", str(target)) if target is not None else Resource("pseudonym", pseudonym or "")
    if on_behalf_of is not None:
        record = audit_events.recorded(
            Actor(on_behalf_of, PersonKind.STAFF), ACTION, subject, purpose, found, request_id
        )
    else:
        record = audit_events.recorded_for_service(
            calling_service or "unauthenticated", ACTION, subject, purpose, found, request_id
        )
    with conn.cursor() as cursor:
        add_to_outbox(cursor, record)
    if not found or row is None:
        raise NotFoundError("There is no such person.")
    return ContactDetails(preferred_name=row[1], email=row[2])
