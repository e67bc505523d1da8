"""Structured JSON logs on standard error.

Log records carry identifiers only. Callers pass structured fields with `extra={"fields": {...}}`; the formatter
never serialises request bodies, and exception text is kept to the exception type and traceback lines, because
exception messages from drivers can echo values (an e-mail in a unique-constraint error, for instance).
"""

from __future__ import annotations

import json
import logging
import sys
import time
import traceback
from typing import Any


class JsonFormatter(logging.Formatter):
    """Formats a record as one JSON object per line."""

    def __init__(self, service: str) -> None:
        super().__init__()
        self._service = service

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "service": self._service,
            "logger": record.name,
            "message": record.getMessage(),
        }
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict):
            entry.update(fields)
        if record.exc_info and record.exc_info[0] is not None:
            exc_type, _exc, tb = record.exc_info
            entry["error"] = exc_type.__name__
            entry["trace"] = [f"{f.filename}:{f.lineno} {f.name}" for f in traceback.extract_tb(tb)]
        return json.dumps(entry, default=str)


def configure_logging(service: str, level: str = "INFO") -> None:
    """Sends every logger's records, as JSON, to standard error."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter(service))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # pika logs connection details and frames at INFO; its warnings are enough.
    logging.getLogger("pika").setLevel(logging.WARNING)
