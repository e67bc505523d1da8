"""Teaching sessions: what one is, when its check-in window is open, and how a new one is planned."""

from __future__ import annotations

import enum
import functools
import secrets
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from tend_checkin.networks import IPNetwork, parse_networks

SECRET_BYTES = 32


@dataclass(frozen=True)
class TeachingSession:
    """A scheduled teaching session of a module run. Holds no student data."""

    id: uuid.UUID
    module_run_id: str
    room: str
    starts_at: datetime
    ends_at: datetime
    checkin_opens_at: datetime
    checkin_closes_at: datetime
    # Never shown or logged: anyone holding it can compute every code of the session.
    code_secret: bytes = field(repr=False)
    opened_by: str
    # Campus network ranges (CIDR) check-ins must come from; empty: any network.
    allowed_networks: tuple[str, ...] = ()
    # The UID of the timetable event it was imported from; None when opened by hand.
    timetable_uid: str | None = None

    @functools.cached_property
    def networks(self) -> tuple[IPNetwork, ...]:
        """`allowed_networks` parsed once per cached session, off the hot path's repeat cost."""
        return parse_networks(self.allowed_networks)


class WindowState(enum.Enum):
    NOT_YET_OPEN = "not_yet_open"
    OPEN = "open"
    CLOSED = "closed"


def window_state(session: TeachingSession, now: datetime) -> WindowState:
    """Whether check-ins are accepted at `now`: from `checkin_opens_at` (inclusive) until `checkin_closes_at`."""
    if now < session.checkin_opens_at:
        return WindowState.NOT_YET_OPEN
    if now >= session.checkin_closes_at:
        return WindowState.CLOSED
    return WindowState.OPEN


def plan_session(
    module_run_id: str,
    room: str,
    starts_at: datetime,
    duration: timedelta,
    opens_before: timedelta,
    opened_by: str,
    allowed_networks: tuple[str, ...] = (),
    timetable_uid: str | None = None,
) -> TeachingSession:
    """A new session with a fresh random code secret; check-in opens `opens_before` the start and closes at the end."""
    ends_at = starts_at + duration
    return TeachingSession(
        id=uuid.uuid4(),
        module_run_id=module_run_id,
        room=room,
        starts_at=starts_at,
        ends_at=ends_at,
        checkin_opens_at=starts_at - opens_before,
        checkin_closes_at=ends_at,
        code_secret=secrets.token_bytes(SECRET_BYTES),
        opened_by=opened_by,
        allowed_networks=allowed_networks,
        timetable_uid=timetable_uid,
    )
