"""Audit's record queries, for the data protection officer's pages and a person's "who has accessed my record".

Every call carries the signed-in person's assertion for audience "audit": audit asks identity whether that person may
read what the query covers, and records the query itself before answering. Records are identifiers only.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from datetime import datetime
from typing import Protocol

import grpc
from google.protobuf.timestamp_pb2 import Timestamp
from tend.audit.v1 import audit_pb2, audit_pb2_grpc, events_pb2

from tend_portal.clients import _datetime
from tend_portal.grpc_calls import call, check_health, failure

# The questions the log answers, by the names the pages use (QueryKind in audit.proto).
ACCESSES_TO_PERSON = "accesses_to_person"
ACTIONS_BY_PERSON = "actions_by_person"
REFUSED_ATTEMPTS = "refused_attempts"
BREAK_GLASS_GRANTS = "break_glass_grants"
MODULE_CHANGES = "module_changes"
PERSON_QUERIES = frozenset({ACCESSES_TO_PERSON, ACTIONS_BY_PERSON})

_QUERY_KINDS = {
    ACCESSES_TO_PERSON: audit_pb2.QUERY_KIND_ACCESSES_TO_PERSON,
    ACTIONS_BY_PERSON: audit_pb2.QUERY_KIND_ACTIONS_BY_PERSON,
    REFUSED_ATTEMPTS: audit_pb2.QUERY_KIND_REFUSED_ATTEMPTS,
    BREAK_GLASS_GRANTS: audit_pb2.QUERY_KIND_BREAK_GLASS_GRANTS,
    MODULE_CHANGES: audit_pb2.QUERY_KIND_MODULE_CHANGES,
}
# The whole of an export's stream, however large, must arrive within this.
EXPORT_TIMEOUT_SECONDS = 600.0
_FORMATS = {"csv": audit_pb2.EXPORT_FORMAT_CSV, "json": audit_pb2.EXPORT_FORMAT_JSON}
_ACTOR_KINDS = {events_pb2.ACTOR_KIND_PERSON: "person", events_pb2.ACTOR_KIND_SERVICE: "service"}
_OUTCOMES = {events_pb2.OUTCOME_ALLOWED: "allowed", events_pb2.OUTCOME_REFUSED: "refused"}


@dataclasses.dataclass(frozen=True)
class RecordQuery:
    """What to ask the log: a kind, the person for the person queries, and an optional window [start, end)."""

    kind: str
    person_id: str = ""
    occurred_from: datetime | None = None
    occurred_until: datetime | None = None


@dataclasses.dataclass(frozen=True)
class AuditEntry:
    seq: int
    occurred_at: datetime
    actor_kind: str
    actor_id: str
    action: str
    subject_kind: str
    subject_id: str
    purpose: str
    outcome: str
    origin_service: str


@dataclasses.dataclass(frozen=True)
class RecordPage:
    entries: list[AuditEntry]
    next_page_token: str


@dataclasses.dataclass(frozen=True)
class Export:
    """An export as it arrives: the media type from the first chunk, then the file's bytes in pieces."""

    content_type: str
    chunks: Iterator[bytes]


class AuditApi(Protocol):
    def query_records(
        self, actor_assertion: str, query: RecordQuery, purpose: str, page_token: str = "", page_size: int = 50
    ) -> RecordPage: ...
    def export_records(self, actor_assertion: str, query: RecordQuery, purpose: str, file_format: str) -> Export: ...
    def check_health(self) -> None: ...


def _timestamp(moment: datetime) -> Timestamp:
    stamp = Timestamp()
    stamp.FromDatetime(moment)
    return stamp


def _query(query: RecordQuery) -> audit_pb2.Query:
    message = audit_pb2.Query(kind=_QUERY_KINDS[query.kind], person_id=query.person_id)
    if query.occurred_from is not None:
        message.occurred_from.CopyFrom(_timestamp(query.occurred_from))
    if query.occurred_until is not None:
        message.occurred_until.CopyFrom(_timestamp(query.occurred_until))
    return message


def _entry(record: audit_pb2.AuditRecord) -> AuditEntry:
    return AuditEntry(
        seq=record.seq,
        occurred_at=_datetime(record.occurred_at),
        actor_kind=_ACTOR_KINDS.get(record.actor.kind, "unknown"),
        actor_id=record.actor.id,
        action=record.action,
        subject_kind=record.subject.kind,
        subject_id=record.subject.id,
        purpose=record.purpose,
        outcome=_OUTCOMES.get(record.outcome, "unknown"),
        origin_service=record.origin_service,
    )


class AuditClient:
    """Audit's gRPC service, over the app's one channel to audit (see channels.py)."""

    def __init__(self, channel: grpc.Channel, timeout_seconds: float = 5.0) -> None:
        self._channel = channel
        self._stub = audit_pb2_grpc.AuditServiceStub(self._channel)
        self._timeout = timeout_seconds

    def query_records(
        self, actor_assertion: str, query: RecordQuery, purpose: str, page_token: str = "", page_size: int = 50
    ) -> RecordPage:
        request = audit_pb2.QueryRecordsRequest(
            actor_assertion=actor_assertion,
            query=_query(query),
            purpose=purpose,
            page_size=page_size,
            page_token=page_token,
        )
        response = call("QueryRecords", self._stub.QueryRecords, request, self._timeout)
        return RecordPage([_entry(record) for record in response.records], response.next_page_token)

    def export_records(self, actor_assertion: str, query: RecordQuery, purpose: str, file_format: str) -> Export:
        """Starts the export and waits for its first chunk, so that a refusal is raised here (before a download
        begins) rather than in the middle of the response. A large export takes a while, so its deadline is long."""
        request = audit_pb2.ExportRecordsRequest(
            actor_assertion=actor_assertion, query=_query(query), purpose=purpose, format=_FORMATS[file_format]
        )
        stream = self._stub.ExportRecords(request, timeout=EXPORT_TIMEOUT_SECONDS)
        try:
            first = next(stream, None)
        except grpc.RpcError as exc:
            raise failure("ExportRecords", exc) from None
        if first is None:
            return Export(content_type="", chunks=iter(()))
        return Export(content_type=first.content_type, chunks=_rest(first.data, stream))

    def check_health(self) -> None:
        check_health(self._channel, self._timeout)


def _rest(first: bytes, stream: Iterator[audit_pb2.ExportChunk]) -> Iterator[bytes]:
    yield first
    try:
        for chunk in stream:
            yield chunk.data
    except grpc.RpcError as exc:
        # The download has begun: the browser sees a cut-short file, and the failure is counted and logged.
        raise failure("ExportRecords", exc) from None
