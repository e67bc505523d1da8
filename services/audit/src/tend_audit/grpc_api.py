"""The AuditService gRPC API.

Tree heads, keys and proofs carry hashes only and are open to every caller. A record query reads: authenticate the
actor assertion, validate the request, ask identity whether the person may ask it, record the query in the log
(allowed or refused, committed), then answer.
"""

from __future__ import annotations

import base64
import binascii
import logging
import uuid
from collections.abc import Iterator
from datetime import UTC
from typing import Any, NoReturn

import grpc
import psycopg
from psycopg_pool import ConnectionPool
from tend.audit.v1 import audit_pb2, audit_pb2_grpc, events_pb2

from tend_audit import exports, metrics, own_records, proofs, queries, tree_heads
from tend_audit.queries import RecordQuery, StoredRecord
from tend_audit.signing import SigningKey, public_keys
from tend_common.identity_access import AccessChecker, ActorRefused, verify_actor
from tend_common.messaging.envelope import timestamp
from tend_common.tokens import TokenVerifier

log = logging.getLogger(__name__)

SERVICE_NAME = audit_pb2.DESCRIPTOR.services_by_name["AuditService"].full_name

DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 500
MAX_ID_LENGTH = 100
MAX_PURPOSE_LENGTH = 500

_KINDS = {
    audit_pb2.QUERY_KIND_ACCESSES_TO_PERSON: queries.ACCESSES_TO_PERSON,
    audit_pb2.QUERY_KIND_ACTIONS_BY_PERSON: queries.ACTIONS_BY_PERSON,
    audit_pb2.QUERY_KIND_REFUSED_ATTEMPTS: queries.REFUSED_ATTEMPTS,
    audit_pb2.QUERY_KIND_BREAK_GLASS_GRANTS: queries.BREAK_GLASS_GRANTS,
    audit_pb2.QUERY_KIND_MODULE_CHANGES: queries.MODULE_CHANGES,
}
_ACTOR_KINDS = {"person": events_pb2.ACTOR_KIND_PERSON, "service": events_pb2.ACTOR_KIND_SERVICE}
_OUTCOMES = {"allowed": events_pb2.OUTCOME_ALLOWED, "refused": events_pb2.OUTCOME_REFUSED}
_EXPORTS = {
    audit_pb2.EXPORT_FORMAT_CSV: (exports.CSV_TYPE, exports.csv_chunks),
    audit_pb2.EXPORT_FORMAT_JSON: (exports.JSON_TYPE, exports.json_chunks),
}


def _abort(context: grpc.ServicerContext, code: grpc.StatusCode, message: str) -> NoReturn:
    context.abort(code, message)
    raise AssertionError("context.abort returned")  # it raises; this tells the type checker so


def validate_query(query: audit_pb2.Query) -> RecordQuery | str:
    """The validated query, or a message saying what is wrong with it."""
    kind = _KINDS.get(query.kind)
    if kind is None:
        return "query.kind is required"
    person_id = query.person_id.strip()
    if kind in queries.PERSON_QUERIES and not person_id:
        return "query.person_id is required for this kind of query"
    if kind not in queries.PERSON_QUERIES and person_id:
        return "query.person_id is only for the person queries"
    if len(person_id) > MAX_ID_LENGTH:
        return f"query.person_id must be at most {MAX_ID_LENGTH} characters"
    try:
        occurred_from = query.occurred_from.ToDatetime(tzinfo=UTC) if query.HasField("occurred_from") else None
        occurred_until = query.occurred_until.ToDatetime(tzinfo=UTC) if query.HasField("occurred_until") else None
    except (ValueError, OverflowError):
        return "query.occurred_from and query.occurred_until must be valid times"
    if occurred_from and occurred_until and occurred_from >= occurred_until:
        return "query.occurred_from must be before query.occurred_until"
    return RecordQuery(kind, person_id, occurred_from, occurred_until)


def validate_purpose(purpose: str) -> str | None:
    """The purpose, or None when it is missing or too long."""
    purpose = purpose.strip()
    return purpose if 0 < len(purpose) <= MAX_PURPOSE_LENGTH else None


def page_token(seq: int) -> str:
    return base64.urlsafe_b64encode(str(seq).encode()).decode().rstrip("=")


def read_page_token(token: str) -> int | str | None:
    """The sequence number to continue below; None for the first page; a message when the token is not one of ours."""
    if not token:
        return None
    try:
        seq = int(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode())
    except (ValueError, binascii.Error, UnicodeDecodeError):
        return "page_token is not a token this service issued"
    return seq if seq > 0 else "page_token is not a token this service issued"


def head_message(head: tree_heads.SignedTreeHead) -> audit_pb2.SignedTreeHead:
    return audit_pb2.SignedTreeHead(
        tree_size=head.tree_size,
        root_hash=head.root_hash,
        signed_at=timestamp(head.signed_at),
        key_id=head.key_id,
        signature=head.signature,
    )


def record_message(record: StoredRecord) -> audit_pb2.AuditRecord:
    return audit_pb2.AuditRecord(
        seq=record.seq,
        event_id=record.event_id,
        occurred_at=timestamp(record.occurred_at),
        recorded_at=timestamp(record.recorded_at),
        actor=events_pb2.Actor(kind=_ACTOR_KINDS[record.actor_kind], id=record.actor_id),
        action=record.action,
        subject=events_pb2.Subject(kind=record.subject_kind, id=record.subject_id),
        purpose=record.purpose,
        outcome=_OUTCOMES[record.outcome],
        origin_service=record.origin_service,
        request_id=record.request_id,
        event=record.event,
    )


def _request_id(context: grpc.ServicerContext) -> str:
    metadata = dict(context.invocation_metadata() or ())
    given = metadata.get("x-request-id")
    return given[:100] if isinstance(given, str) and given else str(uuid.uuid4())


class AuditServicer(audit_pb2_grpc.AuditServiceServicer):
    def __init__(
        self, pool: ConnectionPool, signing_key: SigningKey, verifier: TokenVerifier, access: AccessChecker
    ) -> None:
        self._pool = pool
        self._key = signing_key
        self._verifier = verifier
        self._access = access

    # --- tree heads, keys and proofs: hashes only, open to every caller ---

    def GetSignedTreeHead(
        self, request: audit_pb2.GetSignedTreeHeadRequest, context: grpc.ServicerContext
    ) -> audit_pb2.GetSignedTreeHeadResponse:
        with self._pool.connection() as conn:
            head = tree_heads.sign_current(conn, self._key) if request.sign_now else tree_heads.latest(conn)
            if head is None:
                head = tree_heads.latest(conn)
        if head is None:
            return audit_pb2.GetSignedTreeHeadResponse()
        return audit_pb2.GetSignedTreeHeadResponse(tree_head=head_message(head))

    def GetPublicKeys(
        self, request: audit_pb2.GetPublicKeysRequest, context: grpc.ServicerContext
    ) -> audit_pb2.GetPublicKeysResponse:
        with self._pool.connection() as conn:
            keys = public_keys(conn)
        return audit_pb2.GetPublicKeysResponse(
            keys=[audit_pb2.AuditPublicKey(key_id=key_id, public_key=public) for key_id, public in keys.items()]
        )

    def GetInclusionProof(
        self, request: audit_pb2.GetInclusionProofRequest, context: grpc.ServicerContext
    ) -> audit_pb2.GetInclusionProofResponse:
        with self._pool.connection() as conn:
            which = request.WhichOneof("record")
            if which == "event_id":
                found = proofs.leaf_index_of(conn, request.event_id)
                if found is None:
                    _abort(context, grpc.StatusCode.NOT_FOUND, "no record with that event id")
                leaf_index = found
            elif which == "leaf_index":
                leaf_index = request.leaf_index
            else:
                _abort(context, grpc.StatusCode.INVALID_ARGUMENT, "event_id or leaf_index is required")
            head = self._signed_head(conn, request.tree_size, context)
            if leaf_index >= head.tree_size:
                _abort(
                    context,
                    grpc.StatusCode.OUT_OF_RANGE,
                    f"leaf {leaf_index} is not in the signed tree of {head.tree_size} records",
                )
            try:
                path = proofs.inclusion_proof(conn, leaf_index, head.tree_size)
            except proofs.ProofUnavailable as exc:
                _abort(context, grpc.StatusCode.FAILED_PRECONDITION, str(exc))
        return audit_pb2.GetInclusionProofResponse(leaf_index=leaf_index, tree_head=head_message(head), audit_path=path)

    def GetConsistencyProof(
        self, request: audit_pb2.GetConsistencyProofRequest, context: grpc.ServicerContext
    ) -> audit_pb2.GetConsistencyProofResponse:
        with self._pool.connection() as conn:
            if request.first_tree_size == 0:
                _abort(context, grpc.StatusCode.INVALID_ARGUMENT, "first_tree_size is required")
            first = self._signed_head(conn, request.first_tree_size, context)
            second = self._signed_head(conn, request.second_tree_size, context)
            if first.tree_size > second.tree_size:
                _abort(context, grpc.StatusCode.INVALID_ARGUMENT, "first_tree_size must not exceed second_tree_size")
            try:
                proof = proofs.consistency_proof(conn, first.tree_size, second.tree_size)
            except proofs.ProofUnavailable as exc:
                _abort(context, grpc.StatusCode.FAILED_PRECONDITION, str(exc))
        return audit_pb2.GetConsistencyProofResponse(
            first=head_message(first), second=head_message(second), proof=proof
        )

    def _signed_head(
        self, conn: psycopg.Connection[Any], tree_size: int, context: grpc.ServicerContext
    ) -> tree_heads.SignedTreeHead:
        """The signed head of `tree_size` records, or the latest for 0."""
        head = tree_heads.latest(conn) if tree_size == 0 else tree_heads.at_size(conn, tree_size)
        if head is None:
            if tree_size == 0:
                _abort(context, grpc.StatusCode.FAILED_PRECONDITION, "no tree head has been signed yet")
            _abort(context, grpc.StatusCode.NOT_FOUND, f"no signed tree head of {tree_size} records")
        return head

    # --- record queries: decided by identity, recorded before they are answered ---

    def QueryRecords(
        self, request: audit_pb2.QueryRecordsRequest, context: grpc.ServicerContext
    ) -> audit_pb2.QueryRecordsResponse:
        actor = self._authenticate(request.actor_assertion, context)
        query, purpose = self._validate(request.query, request.purpose, context)
        page_size = request.page_size or DEFAULT_PAGE_SIZE
        if page_size > MAX_PAGE_SIZE:
            _abort(context, grpc.StatusCode.INVALID_ARGUMENT, f"page_size must be at most {MAX_PAGE_SIZE}")
        before = read_page_token(request.page_token)
        if isinstance(before, str):
            _abort(context, grpc.StatusCode.INVALID_ARGUMENT, before)
        self._authorise_and_record(request.actor_assertion, actor, query, purpose, "query", context)
        with self._pool.connection() as conn:
            found = queries.page(conn, query, before, page_size + 1)
        more = len(found) > page_size
        found = found[:page_size]
        return audit_pb2.QueryRecordsResponse(
            records=[record_message(record) for record in found],
            next_page_token=page_token(found[-1].seq) if more else "",
        )

    def ExportRecords(
        self, request: audit_pb2.ExportRecordsRequest, context: grpc.ServicerContext
    ) -> Iterator[audit_pb2.ExportChunk]:
        actor = self._authenticate(request.actor_assertion, context)
        query, purpose = self._validate(request.query, request.purpose, context)
        export = _EXPORTS.get(request.format)
        if export is None:
            _abort(context, grpc.StatusCode.INVALID_ARGUMENT, "format must be CSV or JSON")
        self._authorise_and_record(request.actor_assertion, actor, query, purpose, "export", context)
        content_type, chunks = export
        first = True
        with self._pool.connection() as conn:
            for data in chunks(queries.every(conn, query)):
                yield audit_pb2.ExportChunk(data=data, content_type=content_type if first else "")
                first = False

    def _authenticate(self, assertion: str, context: grpc.ServicerContext) -> str:
        """The asking person's id from a valid assertion; UNAUTHENTICATED otherwise."""
        try:
            return verify_actor(self._verifier, assertion).person_id
        except ActorRefused as refused:
            _abort(context, refused.code, refused.details)

    def _validate(
        self, query_message: audit_pb2.Query, purpose_text: str, context: grpc.ServicerContext
    ) -> tuple[RecordQuery, str]:
        query = validate_query(query_message)
        if isinstance(query, str):
            _abort(context, grpc.StatusCode.INVALID_ARGUMENT, query)
        purpose = validate_purpose(purpose_text)
        if purpose is None:
            _abort(
                context,
                grpc.StatusCode.INVALID_ARGUMENT,
                f"purpose is required, at most {MAX_PURPOSE_LENGTH} characters",
            )
        return query, purpose

    def _authorise_and_record(
        self,
        assertion: str,
        actor: str,
        query: RecordQuery,
        purpose: str,
        verb: str,
        context: grpc.ServicerContext,
    ) -> None:
        action, resource_kind, resource_id = query.required_access()
        try:
            decision = self._access.check(assertion, action, resource_kind, resource_id, purpose)
        except grpc.RpcError:
            _abort(context, grpc.StatusCode.UNAVAILABLE, "identity is unavailable; try again")
        try:
            seq = own_records.record_query(
                self._pool,
                actor,
                f"audit.{verb}.{query.kind}",
                query.subject(),
                purpose,
                decision.allowed,
                _request_id(context),
            )
        except psycopg.Error as exc:
            log.error("the record of a query could not be made", extra={"fields": {"error": type(exc).__name__}})
            _abort(context, grpc.StatusCode.UNAVAILABLE, "the audit log cannot record this query; try again")
        metrics.QUERIES.labels(verb, "allowed" if decision.allowed else "refused").inc()
        log.info(
            "audit query recorded",
            extra={"fields": {"seq": seq, "kind": query.kind, "verb": verb, "allowed": decision.allowed}},
        )
        if not decision.allowed:
            _abort(context, grpc.StatusCode.PERMISSION_DENIED, decision.reason or "not allowed")
