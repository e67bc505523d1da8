"""Exports of query answers as CSV (RFC 4180, with a header row) or one JSON document, produced in chunks."""

from __future__ import annotations

import base64
import csv
import io
import json
from collections.abc import Iterable, Iterator

from tend_audit.queries import StoredRecord

CSV_TYPE = "text/csv; charset=utf-8"
JSON_TYPE = "application/json"
FIELDS = (
    "seq",
    "event_id",
    "occurred_at",
    "recorded_at",
    "actor_kind",
    "actor_id",
    "action",
    "subject_kind",
    "subject_id",
    "purpose",
    "outcome",
    "origin_service",
    "request_id",
    "event_base64",
)
_ROWS_PER_CHUNK = 500
# A cell starting with one of these is taken for a formula by spreadsheet programs (CSV injection).
_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def _values(record: StoredRecord) -> dict[str, str | int]:
    return {
        "seq": record.seq,
        "event_id": record.event_id,
        "occurred_at": record.occurred_at.isoformat(),
        "recorded_at": record.recorded_at.isoformat(),
        "actor_kind": record.actor_kind,
        "actor_id": record.actor_id,
        "action": record.action,
        "subject_kind": record.subject_kind,
        "subject_id": record.subject_id,
        "purpose": record.purpose,
        "outcome": record.outcome,
        "origin_service": record.origin_service,
        "request_id": record.request_id,
        "event_base64": base64.b64encode(record.event).decode(),
    }


def _cell(value: str | int) -> str | int:
    if isinstance(value, str) and value.startswith(_FORMULA_STARTS):
        return "'" + value
    return value


def csv_chunks(records: Iterable[StoredRecord]) -> Iterator[bytes]:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(FIELDS)
    for rows, record in enumerate(records, start=1):
        values = _values(record)
        writer.writerow([_cell(values[name]) for name in FIELDS])
        if rows % _ROWS_PER_CHUNK == 0:
            yield buffer.getvalue().encode()
            buffer.seek(0)
            buffer.truncate()
    yield buffer.getvalue().encode()


def json_chunks(records: Iterable[StoredRecord]) -> Iterator[bytes]:
    parts = ['{"records": [']
    first = True
    for record in records:
        parts.append(("" if first else ", ") + json.dumps(_values(record), sort_keys=True))
        first = False
        if len(parts) >= _ROWS_PER_CHUNK:
            yield "".join(parts).encode()
            parts = []
    parts.append("]}")
    yield "".join(parts).encode()
