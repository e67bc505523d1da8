"""Finding a person by an institutional identifier (a student number, else a staff number, else a member of staff's
user name, since a staff number is optional), for the data protection officer's audit search, which is keyed by
person id.

Decided as "audit.read" on the person found: the data protection officer, or the person themself. That a number
names nobody is itself only for the data protection officer to learn ("audit.read_all"), so anyone else gets the
same refusal whether the number exists or not. Each search is recorded ("person.find") in the caller's transaction,
before anything is returned; the typed identifier is never recorded, only the person it named."""

from __future__ import annotations

import logging
from datetime import datetime

from tend_common.messaging.outbox import add_to_outbox
from tend_identity import access, audit_events
from tend_identity.facts import StoredFacts
from tend_identity.model import Actor, NotFoundError, Refused, Resource
from tend_identity.store import Connection
from tend_identity.store import people as people_store
from tend_identity.store.people import NamedPerson

log = logging.getLogger(__name__)

FIND_ACTION = "person.find"
PURPOSE = "audit search"
READ_ACTION = "audit.read"
SEARCH_ALL_ACTION = "audit.read_all"
# One message for every refusal, so that a refusal does not tell whether the number exists.
REFUSED = "Only the data protection officer may look people up by number, and anyone else only themself."
UNKNOWN_SUBJECT = Resource("person_reference", "unknown")


class PersonSearchRefused(Refused):
    """The person asking may not learn who this identifier names."""


def find_person(conn: Connection, actor: Actor, identifier: str, now: datetime, request_id: str = "") -> NamedPerson:
    """The person `identifier` names; PersonSearchRefused or NotFoundError after recording the refusal. The caller
    commits before answering, and must commit on a refusal too, so that it stays recorded."""
    found = people_store.by_institutional_identifier(conn, identifier)
    facts = StoredFacts(conn, now)
    if found is None:
        subject = UNKNOWN_SUBJECT
        decision = access.decide(actor, SEARCH_ALL_ACTION, Resource("audit_log", "*"), facts)
    else:
        subject = Resource("person", str(found.id))
        decision = access.decide(actor, READ_ACTION, subject, facts)
    with conn.cursor() as cursor:
        add_to_outbox(cursor, audit_events.recorded(actor, FIND_ACTION, subject, PURPOSE, decision.allowed, request_id))
    log.info(
        "person searched",
        extra={
            "fields": {
                "person_id": str(actor.person_id),
                "allowed": decision.allowed,
                "found": found is not None,
                "rule": decision.rule,
            }
        },
    )
    if not decision.allowed:
        raise PersonSearchRefused(REFUSED)
    if found is None:
        raise NotFoundError("No student or member of staff has this number.")
    return found
