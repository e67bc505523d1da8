"""Break-glass grants."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from tend_identity.store import Connection


@dataclass(frozen=True)
class StoredGrant:
    id: uuid.UUID
    person_id: uuid.UUID
    student_id: uuid.UUID
    reason: str
    granted_at: datetime
    expires_at: datetime


def add_grant(conn: Connection, grant: StoredGrant) -> None:
    conn.execute(
        "INSERT INTO break_glass_grants (id, person_id, student_id, reason, granted_at, expires_at)"
        " VALUES (%s, %s, %s, %s, %s, %s)",
        (grant.id, grant.person_id, grant.student_id, grant.reason, grant.granted_at, grant.expires_at),
    )


def grants_since(conn: Connection, since: datetime | None, limit: int = 1000) -> list[StoredGrant]:
    """Grants made at or after `since` (all when None), newest first."""
    rows = conn.execute(
        "SELECT id, person_id, student_id, reason, granted_at, expires_at FROM break_glass_grants"
        " WHERE %(since)s::timestamptz IS NULL OR granted_at >= %(since)s"
        " ORDER BY granted_at DESC, id LIMIT %(limit)s",
        {"since": since, "limit": limit},
    ).fetchall()
    return [StoredGrant(*row) for row in rows]
