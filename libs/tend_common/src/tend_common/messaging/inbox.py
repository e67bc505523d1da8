"""Idempotent consuming: the event id is recorded in the same transaction as the effect."""

from __future__ import annotations

from typing import Any

import psycopg


def claim_event(cursor: psycopg.Cursor[Any], consumer: str, event_id: str) -> bool:
    """Records that `consumer` applies `event_id`; False if it was applied before (the caller then does nothing).

    Call inside the transaction that applies the effect: if that transaction rolls back, so does the claim.
    """
    cursor.execute(
        "INSERT INTO inbox_processed_events (consumer, event_id) VALUES (%s, %s) ON CONFLICT DO NOTHING",
        (consumer, event_id),
    )
    return cursor.rowcount == 1
