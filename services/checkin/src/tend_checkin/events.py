"""The events checkin produces, built from domain values. Nothing here knows a person's identity."""

from __future__ import annotations

import uuid
from datetime import datetime

from tend.audit.v1 import events_pb2 as audit_events_pb2
from tend.checkin.v1 import events_pb2 as checkin_events_pb2

from tend_checkin.sessions import TeachingSession
from tend_common.messaging.envelope import new_meta, timestamp

PRODUCER = "checkin"
ATTENDANCE_RECORDED = "checkin.attendance_recorded.v1"
ATTENDANCE_WITHDRAWN = "checkin.attendance_withdrawn.v1"
AUDIT_RECORDED = "audit.recorded.v1"

# Fixed for ever: attendance event ids are derived from it, so changing it would make a repeated check-in look new.
ATTENDANCE_EVENT_NAMESPACE = uuid.UUID("5b0d6c39-7f0e-4c9a-9d7b-2f4f3a8e61c4")


def attendance_event_id(session_id: uuid.UUID, pseudonym: str) -> str:
    """The same (session, pseudonym) always gives the same id, so any repeat is de-duplicated downstream."""
    return str(uuid.uuid5(ATTENDANCE_EVENT_NAMESPACE, f"{session_id}:{pseudonym}"))


def attendance_recorded(
    session: TeachingSession, pseudonym: str, recorded_at: datetime
) -> checkin_events_pb2.AttendanceRecorded:
    """A student checked in with the session's code. Deterministic in its inputs, so a repeat with the same
    `recorded_at` is byte-for-byte the same event."""
    return checkin_events_pb2.AttendanceRecorded(
        meta=new_meta(PRODUCER, event_id=attendance_event_id(session.id, pseudonym), occurred_at=recorded_at),
        session_id=str(session.id),
        module_run_id=session.module_run_id,
        student_pseudonym=pseudonym,
        recorded_at=timestamp(recorded_at),
        source=checkin_events_pb2.ATTENDANCE_SOURCE_CODE,
        session_starts_at=timestamp(session.starts_at),
    )


def attendance_corrected(
    session: TeachingSession, pseudonym: str, present: bool, correction_id: uuid.UUID, corrected_at: datetime
) -> checkin_events_pb2.AttendanceRecorded | checkin_events_pb2.AttendanceWithdrawn:
    """A staff correction: present is an AttendanceRecorded from staff, absent an AttendanceWithdrawn. Each
    correction is its own fact, so its event id is the correction's id."""
    meta = new_meta(PRODUCER, event_id=str(correction_id), occurred_at=corrected_at)
    if present:
        return checkin_events_pb2.AttendanceRecorded(
            meta=meta,
            session_id=str(session.id),
            module_run_id=session.module_run_id,
            student_pseudonym=pseudonym,
            recorded_at=timestamp(corrected_at),
            source=checkin_events_pb2.ATTENDANCE_SOURCE_STAFF_CORRECTION,
            session_starts_at=timestamp(session.starts_at),
        )
    return checkin_events_pb2.AttendanceWithdrawn(
        meta=meta,
        session_id=str(session.id),
        module_run_id=session.module_run_id,
        student_pseudonym=pseudonym,
        withdrawn_at=timestamp(corrected_at),
        session_starts_at=timestamp(session.starts_at),
    )


def session_opened_audit(
    session: TeachingSession, actor_person_id: str, occurred_at: datetime, purpose: str
) -> audit_events_pb2.AuditEvent:
    """The audit record of a member of staff opening a session (a privileged change)."""
    return staff_action_audit(
        actor_person_id, "teaching_session.open", "teaching_session", str(session.id), occurred_at, purpose
    )


def staff_action_audit(
    actor_person_id: str, action: str, subject_kind: str, subject_id: str, occurred_at: datetime, purpose: str
) -> audit_events_pb2.AuditEvent:
    """The audit record of a privileged change a member of staff made (allowed by identity before it was made)."""
    return audit_events_pb2.AuditEvent(
        meta=new_meta(PRODUCER, occurred_at=occurred_at),
        actor=audit_events_pb2.Actor(kind=audit_events_pb2.ACTOR_KIND_PERSON, id=actor_person_id),
        action=action,
        subject=audit_events_pb2.Subject(kind=subject_kind, id=subject_id),
        purpose=purpose,
        outcome=audit_events_pb2.OUTCOME_ALLOWED,
        origin_service=PRODUCER,
    )
