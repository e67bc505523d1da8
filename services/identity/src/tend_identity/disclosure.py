"""Disclosing students: which students a person may see for a purpose, and display data for pseudonyms.

Each disclosure is recorded for the audit trail in the caller's transaction before anything is returned: one record
per student shown (so "who looked at this student" finds it), and one for a refusal or an aggregate.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from tend_common.messaging.envelope import OutgoingEvent
from tend_common.messaging.outbox import add_to_outbox
from tend_identity import access, audit_events, policy, pseudonyms
from tend_identity.model import Actor, Resource
from tend_identity.policy import Detail, Purpose
from tend_identity.secret_wrapping import SecretWrapping
from tend_identity.store import Connection, relations
from tend_identity.store import keys as key_store
from tend_identity.store import people as people_store

log = logging.getLogger(__name__)

LIST_ACTION = "student.list"
RESOLVE_ACTION = "student.resolve"
COHORT_ACTION = "cohort.view"


@dataclass(frozen=True)
class ShownStudent:
    person_id: uuid.UUID
    pseudonym: str
    display_name: str
    student_number: str
    # Set only where the purpose needs it (visa compliance); False otherwise.
    sponsored_visa: bool


@dataclass(frozen=True)
class VisibleStudents:
    detail: Detail
    students: list[ShownStudent]
    rule: str
    # For an aggregate: how many students it covers, or 0 when suppressed (fewer than the minimum).
    cohort_size: int = 0
    suppressed: bool = False


def _relationships_at(actor: Actor, purpose: Purpose, detail: Detail) -> frozenset[str]:
    names = frozenset(name for name in policy.RELATIONSHIP_NAMES if policy.detail_for(name, purpose) is detail)
    return access.usable_relationships(actor, names)


def _shown(
    conn: Connection,
    student_ids: Sequence[uuid.UUID],
    purpose: Purpose,
    academic_year: str,
    wrapping: SecretWrapping,
) -> list[ShownStudent]:
    cards = people_store.student_cards(conn, student_ids)
    names = pseudonyms.pseudonyms_of(conn, wrapping, [card.id for card in cards], academic_year)
    return [
        ShownStudent(
            person_id=card.id,
            pseudonym=names[card.id],
            display_name=card.display_name,
            student_number=card.student_number or "",
            sponsored_visa=card.sponsored_visa and purpose is Purpose.VISA_COMPLIANCE,
        )
        for card in cards
    ]


def _audit(conn: Connection, records: Sequence[OutgoingEvent]) -> None:
    with conn.pipeline(), conn.cursor() as cursor:
        for record in records:
            add_to_outbox(cursor, record)


def list_visible_students(
    conn: Connection,
    actor: Actor,
    purpose: Purpose,
    module_run_id: uuid.UUID | None,
    now: datetime,
    academic_year: str,
    minimum_cohort: int,
    request_id: str = "",
    *,
    wrapping: SecretWrapping,
) -> VisibleStudents:
    """Individual students if a relationship reaches any for the purpose; otherwise an aggregate's size if one
    does (suppressed below `minimum_cohort`); otherwise nothing, refused. `wrapping` unwraps the year's pseudonym
    secret (and wraps it, if this is the year's first pseudonym)."""
    rule_base = f"list.{purpose.name.lower()}"
    cohort = Resource("module_run", str(module_run_id)) if module_run_id else Resource("cohort", "in_scope")
    individual = relations.students_in_scope(
        conn, actor.person_id, _relationships_at(actor, purpose, Detail.INDIVIDUAL), now, module_run_id
    )
    if individual:
        shown = _shown(conn, individual, purpose, academic_year, wrapping)
        _audit(
            conn,
            [
                audit_events.recorded(
                    actor, LIST_ACTION, Resource("person", str(s.person_id)), purpose.value, True, request_id
                )
                for s in shown
            ],
        )
        result = VisibleStudents(Detail.INDIVIDUAL, shown, f"{rule_base}.individual")
    else:
        aggregate = relations.students_in_scope(
            conn, actor.person_id, _relationships_at(actor, purpose, Detail.AGGREGATE), now, module_run_id
        )
        if aggregate:
            suppressed = len(aggregate) < minimum_cohort
            rule = f"{rule_base}.aggregate" + (".suppressed" if suppressed else "")
            result = VisibleStudents(Detail.AGGREGATE, [], rule, 0 if suppressed else len(aggregate), suppressed)
            _audit(conn, [audit_events.recorded(actor, COHORT_ACTION, cohort, purpose.value, True, request_id)])
        else:
            result = VisibleStudents(Detail.NONE, [], f"{rule_base}.none")
            _audit(conn, [audit_events.recorded(actor, LIST_ACTION, cohort, purpose.value, False, request_id)])
    log.info(
        "students listed",
        extra={
            "fields": {
                "person_id": str(actor.person_id),
                "purpose": purpose.name,
                "detail": result.detail.name,
                "count": len(result.students),
                "rule": result.rule,
            }
        },
    )
    return result


def resolve_pseudonyms(
    conn: Connection,
    actor: Actor,
    requested: Sequence[str],
    purpose: Purpose,
    now: datetime,
    request_id: str = "",
) -> list[ShownStudent]:
    """Display data for the requested pseudonyms whose students the person may see individually for the purpose;
    the others are left out. Each is audited, allowed or refused."""
    wanted = list(dict.fromkeys(requested))
    people = key_store.people_of_pseudonyms(conn, wanted)
    allowed = set(
        relations.students_in_scope(
            conn,
            actor.person_id,
            _relationships_at(actor, purpose, Detail.INDIVIDUAL),
            now,
            among=list(set(people.values())),
        )
    )
    cards = {card.id: card for card in people_store.student_cards(conn, list(allowed))}
    shown: list[ShownStudent] = []
    records = []
    for pseudonym in wanted:
        person_id = people.get(pseudonym)
        subject = Resource("pseudonym", pseudonym) if person_id is None else Resource("person", str(person_id))
        card = cards.get(person_id) if person_id is not None else None
        records.append(
            audit_events.recorded(actor, RESOLVE_ACTION, subject, purpose.value, card is not None, request_id)
        )
        if card is not None:
            shown.append(
                ShownStudent(
                    person_id=card.id,
                    pseudonym=pseudonym,
                    display_name=card.display_name,
                    student_number=card.student_number or "",
                    sponsored_visa=card.sponsored_visa and purpose is Purpose.VISA_COMPLIANCE,
                )
            )
    _audit(conn, records)
    log.info(
        "pseudonyms resolved",
        extra={
            "fields": {
                "person_id": str(actor.person_id),
                "purpose": purpose.name,
                "asked": len(wanted),
                "resolved": len(shown),
            }
        },
    )
    return shown
