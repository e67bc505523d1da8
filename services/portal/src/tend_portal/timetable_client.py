"""Checkin's timetable import, for module staff uploading an iCalendar or CSV file for a module run they teach.

A rejected file comes back as INVALID_ARGUMENT whose details name each bad line. Unlike other calls, those details
are shown: they describe the file the person has just uploaded, and checkin holds no personal data to leak.
"""

from __future__ import annotations

import dataclasses
from datetime import datetime
from typing import Protocol

import grpc
from tend.checkin.v1 import checkin_pb2, checkin_pb2_grpc

from tend_portal.clients import _datetime
from tend_portal.grpc_calls import DetailsShown, call

FORMATS = {"ics": checkin_pb2.TIMETABLE_FORMAT_ICALENDAR, "csv": checkin_pb2.TIMETABLE_FORMAT_CSV}
# Checkin prefixes a rejected file's line errors with this, then joins them with "; ".
_REJECTED_PREFIX = "the timetable was not imported: "
_MAX_SHOWN_PROBLEM = 300


@dataclasses.dataclass(frozen=True)
class ImportedSession:
    session_id: str
    module_run_id: str
    room: str
    starts_at: datetime
    ends_at: datetime


@dataclasses.dataclass(frozen=True)
class TimetableImport:
    created: int
    updated: int
    unchanged: int
    skipped: int
    sessions: list[ImportedSession]


class TimetableRejected(Exception):
    """Checkin refused the file (or the request); `problems` say why, one line each."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems


class TimetableApi(Protocol):
    def import_timetable(
        self, actor_assertion: str, file_format: str, content: bytes, module_run_id: str, timezone: str
    ) -> TimetableImport: ...


def problems_in(details: str) -> list[str]:
    """Checkin's rejection details as a list of short sentences, first letter capitalised."""
    text = details.removeprefix(_REJECTED_PREFIX)
    parts = [part.strip()[:_MAX_SHOWN_PROBLEM] for part in text.split("; ") if part.strip()]
    return [part[0].upper() + part[1:] for part in parts] or ["Checkin did not accept the file."]


# Any INVALID_ARGUMENT is about the file (or the request) the person just sent: its details are shown, as above.
_DETAILS_SHOWN: DetailsShown = {
    grpc.StatusCode.INVALID_ARGUMENT: lambda _method, details: TimetableRejected(problems_in(details)),
}


class TimetableClient:
    """Checkin's timetable import, over the app's one channel to checkin (see channels.py)."""

    def __init__(self, channel: grpc.Channel, timeout_seconds: float = 5.0) -> None:
        self._stub = checkin_pb2_grpc.CheckinServiceStub(channel)
        self._timeout = timeout_seconds

    def import_timetable(
        self, actor_assertion: str, file_format: str, content: bytes, module_run_id: str, timezone: str
    ) -> TimetableImport:
        request = checkin_pb2.ImportTimetableRequest(
            actor_assertion=actor_assertion,
            format=FORMATS[file_format],
            content=content,
            module_run_id=module_run_id,
            timezone=timezone,
        )
        response = call(
            "ImportTimetable", self._stub.ImportTimetable, request, self._timeout, details_shown=_DETAILS_SHOWN
        )
        return TimetableImport(
            created=response.created,
            updated=response.updated,
            unchanged=response.unchanged,
            skipped=response.skipped,
            sessions=[
                ImportedSession(
                    session_id=s.session_id,
                    module_run_id=s.module_run_id,
                    room=s.room,
                    starts_at=_datetime(s.starts_at),
                    ends_at=_datetime(s.ends_at),
                )
                for s in response.sessions
            ],
        )
