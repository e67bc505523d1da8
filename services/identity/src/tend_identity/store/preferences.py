"""Server-side preferences, one row per person who changed one."""

from __future__ import annotations

import uuid

from tend_identity.store import Connection


def landing_page(conn: Connection, person_id: uuid.UUID) -> str | None:
    row = conn.execute("SELECT landing_page FROM preferences WHERE person_id = %s", (person_id,)).fetchone()
    return None if row is None else str(row[0])


def set_landing_page(conn: Connection, person_id: uuid.UUID, landing_page: str) -> None:
    conn.execute(
        "INSERT INTO preferences (person_id, landing_page) VALUES (%s, %s)"
        " ON CONFLICT (person_id) DO UPDATE SET landing_page = excluded.landing_page, updated_at = now()",
        (person_id, landing_page),
    )
