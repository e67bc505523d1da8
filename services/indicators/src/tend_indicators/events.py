"""The events indicators publishes (through the outbox), built from domain values. Pseudonyms and person ids only."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime

from tend.audit.v1 import events_pb2 as audit_events_pb2
from tend.indicators.v1 import events_pb2

from tend_common.messaging.envelope import OutgoingEvent, envelope, new_meta

PRODUCER = "indicators"
INDICATOR_RAISED = "indicators.indicator_raised.v1"
INDICATOR_WITHDRAWN = "indicators.indicator_withdrawn.v1"
CASE_UPDATED = "indicators.case_updated.v1"
AUDIT_RECORDED = "audit.recorded.v1"

# Fixed for ever: flag event ids are derived from it.
FLAG_EVENT_NAMESPACE = uuid.UUID("7d3c1a52-94b8-4c0f-8a3e-5e1f2b6d9c40")


def _flag_event_id(flag_id: uuid.UUID, what: str, at: datetime) -> str:
    return str(uuid.uuid5(FLAG_EVENT_NAMESPACE, f"{flag_id}:{what}:{at.isoformat()}"))


def indicator_raised(
    flag_id: uuid.UUID,
    case_id: uuid.UUID,
    pseudonym: str,
    module_run_id: str,
    rule: str,
    sentence: str,
    observed_on: str,
    at: datetime,
) -> OutgoingEvent:
    message = events_pb2.IndicatorRaised(
        meta=new_meta(PRODUCER, event_id=_flag_event_id(flag_id, "raised", at), occurred_at=at),
        flag_id=str(flag_id),
        case_id=str(case_id),
        student_pseudonym=pseudonym,
        module_run_id=module_run_id,
        rule=rule,
        sentence=sentence,
        observed_on=observed_on,
    )
    return envelope(message, INDICATOR_RAISED)


def indicator_withdrawn(
    flag_id: uuid.UUID, case_id: uuid.UUID, pseudonym: str, module_run_id: str, rule: str, reason: str, at: datetime
) -> OutgoingEvent:
    message = events_pb2.IndicatorWithdrawn(
        meta=new_meta(PRODUCER, event_id=_flag_event_id(flag_id, "withdrawn", at), occurred_at=at),
        flag_id=str(flag_id),
        case_id=str(case_id),
        student_pseudonym=pseudonym,
        module_run_id=module_run_id,
        rule=rule,
        reason=reason,
    )
    return envelope(message, INDICATOR_WITHDRAWN)


def case_updated(
    case_id: uuid.UUID,
    pseudonym: str,
    change: int,
    staff: Sequence[str],
    raised_flags: int,
    at: datetime,
    flag_id: uuid.UUID | None = None,
    event_id: str | None = None,
    request_id: str = "",
) -> OutgoingEvent:
    """`event_id` when the fact determines it (so a repeat is the same event); `request_id` names what caused the
    change when it is about a supportive enquiry (notify's request id) or a staff action (the caller's)."""
    message = events_pb2.CaseUpdated(
        meta=new_meta(PRODUCER, event_id=event_id, request_id=request_id, occurred_at=at),
        case_id=str(case_id),
        student_pseudonym=pseudonym,
        change=change,  # type: ignore[arg-type]
        staff_person_ids=list(staff),
        raised_flags=raised_flags,
        flag_id=str(flag_id) if flag_id else "",
    )
    return envelope(message, CASE_UPDATED)


def read_audit(
    actor_person_id: str, action: str, subject_kind: str, subject_id: str, purpose: str, allowed: bool, at: datetime
) -> OutgoingEvent:
    """The audit record of a person reading engagement data (or being refused), committed before the answer."""
    message = audit_events_pb2.AuditEvent(
        meta=new_meta(PRODUCER, occurred_at=at),
        actor=audit_events_pb2.Actor(kind=audit_events_pb2.ACTOR_KIND_PERSON, id=actor_person_id),
        action=action,
        subject=audit_events_pb2.Subject(kind=subject_kind, id=subject_id),
        purpose=purpose,
        outcome=audit_events_pb2.OUTCOME_ALLOWED if allowed else audit_events_pb2.OUTCOME_REFUSED,
        origin_service=PRODUCER,
    )
    return envelope(message, AUDIT_RECORDED)


def staff_action_audit(
    actor_person_id: str, action: str, pseudonym: str, purpose: str, request_id: str, at: datetime
) -> OutgoingEvent:
    """The audit record of a member of staff acting on a student's case (allowed by identity first). The note itself
    stays in the case: it is free text and may hold personal data."""
    message = audit_events_pb2.AuditEvent(
        meta=new_meta(PRODUCER, request_id=request_id, occurred_at=at),
        actor=audit_events_pb2.Actor(kind=audit_events_pb2.ACTOR_KIND_PERSON, id=actor_person_id),
        action=action,
        subject=audit_events_pb2.Subject(kind="pseudonym", id=pseudonym),
        purpose=purpose,
        outcome=audit_events_pb2.OUTCOME_ALLOWED,
        origin_service=PRODUCER,
    )
    return envelope(message, AUDIT_RECORDED)
