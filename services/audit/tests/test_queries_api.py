"""Record queries over gRPC: decided by identity (a fake over real gRPC), recorded in the log before they are
answered, paged, and exported as CSV and JSON."""

from __future__ import annotations

import base64
import csv
import io
import json
from datetime import UTC, datetime, timedelta

import grpc
import psycopg
import pytest
from google.protobuf.timestamp_pb2 import Timestamp
from tend.audit.v1 import audit_pb2, events_pb2

from services.audit.tests.conftest import DENIED_REASON, Api
from services.audit.tests.helpers import append, audit_event
from tend_audit.verify import verify_log

DPO = "dpo-1"
STUDENT = "student-1"
OTHER_STUDENT = "student-2"
LECTURER = "staff-7"
KIND = audit_pb2.QueryKind


def _log_fixture(api: Api) -> None:
    """A small log: accesses to two students, a refusal, a break-glass grant, module changes."""
    append(
        api.dsn,
        [
            audit_event("student.view", LECTURER, ("person", STUDENT)),
            audit_event("student.view", "staff-8", ("student", STUDENT)),
            audit_event("student.view", LECTURER, ("person", OTHER_STUDENT)),
            audit_event("student.view", "staff-9", ("person", STUDENT), allowed=False),
            audit_event("break_glass.grant", "staff-9", ("person", OTHER_STUDENT), purpose="welfare emergency"),
            audit_event("module.update", LECTURER, ("module", "CS101")),
            audit_event("module.create", "admin-1", ("module", "CS102")),
            audit_event("modules_list.view", LECTURER, ("module", "*")),
        ],
    )


def _grant_dpo(api: Api) -> None:
    api.identity.allow(DPO, "audit.read_all", "audit_log", "*")
    for person in (STUDENT, OTHER_STUDENT):
        api.identity.allow(DPO, "audit.read", "person", person)


def _query(
    api: Api, asker: str, kind: int, person_id: str = "", page_size: int = 0, page_token: str = "", **times: datetime
) -> audit_pb2.QueryRecordsResponse:
    query = audit_pb2.Query(kind=kind, person_id=person_id)  # type: ignore[arg-type]
    for name, moment in times.items():
        stamp = Timestamp()
        stamp.FromDatetime(moment)
        getattr(query, name).CopyFrom(stamp)
    response: audit_pb2.QueryRecordsResponse = api.stub.QueryRecords(
        audit_pb2.QueryRecordsRequest(
            actor_assertion=api.identity.assertion(asker),
            query=query,
            purpose="subject access request 42",
            page_size=page_size,
            page_token=page_token,
        ),
        metadata=[("x-request-id", "req-123")],
    )
    return response


def _without_own_records(response: audit_pb2.QueryRecordsResponse) -> list[tuple[str, str, str, str]]:
    return [
        (r.action, r.actor.id, r.subject.id, events_pb2.Outcome.Name(r.outcome))
        for r in response.records
        if r.origin_service != "audit"
    ]


def _log_rows(dsn: str, sql: str) -> list[tuple[object, ...]]:
    with psycopg.connect(dsn) as conn:
        return conn.execute(sql.encode()).fetchall()


def test_dpo_sees_who_accessed_a_student_and_the_query_is_recorded_first(api: Api) -> None:
    _log_fixture(api)
    _grant_dpo(api)
    response = _query(api, DPO, KIND.QUERY_KIND_ACCESSES_TO_PERSON, STUDENT)
    # Newest first; the query's own record is the newest access to the student, recorded before the answer.
    own = response.records[0]
    assert (own.origin_service, own.action, own.actor.id, own.subject.kind, own.subject.id) == (
        "audit",
        "audit.query.accesses_to_person",
        DPO,
        "person",
        STUDENT,
    )
    assert own.purpose == "subject access request 42"
    assert own.request_id == "req-123"
    assert _without_own_records(response) == [
        ("student.view", "staff-9", STUDENT, "OUTCOME_REFUSED"),
        ("student.view", "staff-8", STUDENT, "OUTCOME_ALLOWED"),
        ("student.view", LECTURER, STUDENT, "OUTCOME_ALLOWED"),
    ]
    [request] = api.identity.access_requests
    assert (request.action, request.resource.kind, request.resource.id) == ("audit.read", "person", STUDENT)
    assert events_pb2.AuditEvent.FromString(own.event).meta.event_id == own.event_id
    with psycopg.connect(api.dsn) as conn:
        assert verify_log(conn).ok


def test_a_student_sees_accesses_to_themself_but_not_to_another(api: Api) -> None:
    _log_fixture(api)
    api.identity.allow(STUDENT, "audit.read", "person", STUDENT)
    mine = _query(api, STUDENT, KIND.QUERY_KIND_ACCESSES_TO_PERSON, STUDENT)
    assert len(_without_own_records(mine)) == 3
    with pytest.raises(grpc.RpcError) as refused:
        _query(api, STUDENT, KIND.QUERY_KIND_ACCESSES_TO_PERSON, OTHER_STUDENT)
    assert refused.value.code() == grpc.StatusCode.PERMISSION_DENIED
    assert refused.value.details() == DENIED_REASON
    # The refused attempt is itself on the record, as refused.
    assert _log_rows(
        api.dsn,
        "SELECT actor_id, action, subject_id, outcome FROM audit_log WHERE origin_service = 'audit' ORDER BY seq",
    ) == [
        (STUDENT, "audit.query.accesses_to_person", STUDENT, "allowed"),
        (STUDENT, "audit.query.accesses_to_person", OTHER_STUDENT, "refused"),
    ]


@pytest.mark.parametrize(
    ("kind", "person_id", "expected"),
    [
        (
            KIND.QUERY_KIND_ACTIONS_BY_PERSON,
            LECTURER,
            [
                ("modules_list.view", LECTURER, "*", "OUTCOME_ALLOWED"),
                ("module.update", LECTURER, "CS101", "OUTCOME_ALLOWED"),
                ("student.view", LECTURER, OTHER_STUDENT, "OUTCOME_ALLOWED"),
                ("student.view", LECTURER, STUDENT, "OUTCOME_ALLOWED"),
            ],
        ),
        (KIND.QUERY_KIND_REFUSED_ATTEMPTS, "", [("student.view", "staff-9", STUDENT, "OUTCOME_REFUSED")]),
        (
            KIND.QUERY_KIND_BREAK_GLASS_GRANTS,
            "",
            [("break_glass.grant", "staff-9", OTHER_STUDENT, "OUTCOME_ALLOWED")],
        ),
        (
            KIND.QUERY_KIND_MODULE_CHANGES,
            "",
            [
                ("module.create", "admin-1", "CS102", "OUTCOME_ALLOWED"),
                ("module.update", LECTURER, "CS101", "OUTCOME_ALLOWED"),
            ],
        ),
    ],
)
def test_dpo_queries_over_the_whole_log(
    api: Api, kind: int, person_id: str, expected: list[tuple[str, str, str, str]]
) -> None:
    _log_fixture(api)
    _grant_dpo(api)
    assert _without_own_records(_query(api, DPO, kind, person_id)) == expected
    [request] = api.identity.access_requests
    assert (request.action, request.resource.kind, request.resource.id) == ("audit.read_all", "audit_log", "*")


def test_the_whole_log_queries_are_refused_to_anyone_but_whom_identity_allows(api: Api) -> None:
    _log_fixture(api)
    api.identity.allow(STUDENT, "audit.read", "person", STUDENT)
    for kind, person_id in (
        (KIND.QUERY_KIND_ACTIONS_BY_PERSON, STUDENT),
        (KIND.QUERY_KIND_REFUSED_ATTEMPTS, ""),
        (KIND.QUERY_KIND_BREAK_GLASS_GRANTS, ""),
        (KIND.QUERY_KIND_MODULE_CHANGES, ""),
    ):
        with pytest.raises(grpc.RpcError) as refused:
            _query(api, STUDENT, kind, person_id)
        assert refused.value.code() == grpc.StatusCode.PERMISSION_DENIED
    assert _log_rows(
        api.dsn, "SELECT count(*) FROM audit_log WHERE origin_service = 'audit' AND outcome = 'refused'"
    ) == [(4,)]


def test_pages_cover_every_record_once_newest_first(api: Api) -> None:
    append(api.dsn, [audit_event("student.view", f"staff-{n}", ("person", STUDENT)) for n in range(23)])
    _grant_dpo(api)
    seen: list[int] = []
    token = ""
    pages = 0
    while True:
        response = _query(api, DPO, KIND.QUERY_KIND_ACCESSES_TO_PERSON, STUDENT, page_size=10, page_token=token)
        seen.extend(r.seq for r in response.records)
        pages += 1
        token = response.next_page_token
        if not token:
            break
    # Each page's query is recorded (and, being about the student, found by the later pages).
    assert pages == 3
    assert seen == sorted(set(seen), reverse=True)
    assert set(range(1, 24)) <= set(seen)


def test_a_time_window_narrows_the_answer(api: Api) -> None:
    start = datetime(2026, 1, 1, tzinfo=UTC)
    append(
        api.dsn,
        [
            audit_event("student.view", f"staff-{day}", ("person", STUDENT), occurred_at=start + timedelta(days=day))
            for day in range(10)
        ],
    )
    _grant_dpo(api)
    response = _query(
        api,
        DPO,
        KIND.QUERY_KIND_ACCESSES_TO_PERSON,
        STUDENT,
        occurred_from=start + timedelta(days=3),
        occurred_until=start + timedelta(days=6),
    )
    assert [r.actor.id for r in response.records] == ["staff-5", "staff-4", "staff-3"]


def _export(api: Api, export_format: int) -> tuple[str, bytes]:
    chunks = list(
        api.stub.ExportRecords(
            audit_pb2.ExportRecordsRequest(
                actor_assertion=api.identity.assertion(DPO),
                query=audit_pb2.Query(kind=KIND.QUERY_KIND_ACCESSES_TO_PERSON, person_id=STUDENT),
                purpose="subject access request 42",
                format=export_format,  # type: ignore[arg-type]
            )
        )
    )
    return chunks[0].content_type, b"".join(c.data for c in chunks)


def test_export_as_csv(api: Api) -> None:
    _log_fixture(api)
    append(api.dsn, [audit_event("student.view", "=cmd|' /C calc'!A0", ("person", STUDENT), purpose="-2+3")])
    _grant_dpo(api)
    content_type, data = _export(api, audit_pb2.EXPORT_FORMAT_CSV)
    assert content_type.startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(data.decode())))
    assert [(r["action"], r["actor_id"], r["outcome"]) for r in rows if r["origin_service"] != "audit"] == [
        ("student.view", "'=cmd|' /C calc'!A0", "allowed"),
        ("student.view", "staff-9", "refused"),
        ("student.view", "staff-8", "allowed"),
        ("student.view", LECTURER, "allowed"),
    ]
    assert rows[1]["purpose"] == "'-2+3"
    assert rows[0]["action"] == "audit.export.accesses_to_person"
    body = base64.b64decode(rows[2]["event_base64"])
    assert events_pb2.AuditEvent.FromString(body).actor.id == "staff-9"


def test_export_as_json(api: Api) -> None:
    _log_fixture(api)
    _grant_dpo(api)
    content_type, data = _export(api, audit_pb2.EXPORT_FORMAT_JSON)
    assert content_type == "application/json"
    records = json.loads(data)["records"]
    assert [r["actor_id"] for r in records] == [DPO, "staff-9", "staff-8", LECTURER]
    assert records[0]["action"] == "audit.export.accesses_to_person"
    assert {r["subject_id"] for r in records} == {STUDENT}


def test_an_export_refused_is_recorded_and_yields_nothing(api: Api) -> None:
    _log_fixture(api)
    with pytest.raises(grpc.RpcError) as refused:
        _export(api, audit_pb2.EXPORT_FORMAT_JSON)
    assert refused.value.code() == grpc.StatusCode.PERMISSION_DENIED
    assert _log_rows(api.dsn, "SELECT action, outcome FROM audit_log WHERE origin_service = 'audit'") == [
        ("audit.export.accesses_to_person", "refused")
    ]


BAD_QUERIES = [
    (audit_pb2.Query(), "why", "query.kind is required"),
    (audit_pb2.Query(kind=KIND.QUERY_KIND_ACCESSES_TO_PERSON), "why", "query.person_id is required"),
    (audit_pb2.Query(kind=KIND.QUERY_KIND_REFUSED_ATTEMPTS, person_id="x"), "why", "only for the person queries"),
    (audit_pb2.Query(kind=KIND.QUERY_KIND_ACCESSES_TO_PERSON, person_id="x" * 101), "why", "at most 100"),
    (audit_pb2.Query(kind=KIND.QUERY_KIND_REFUSED_ATTEMPTS), "  ", "purpose is required"),
    (audit_pb2.Query(kind=KIND.QUERY_KIND_REFUSED_ATTEMPTS), "x" * 501, "purpose is required"),
    (
        audit_pb2.Query(
            kind=KIND.QUERY_KIND_REFUSED_ATTEMPTS,
            occurred_from=Timestamp(seconds=2000),
            occurred_until=Timestamp(seconds=1000),
        ),
        "why",
        "occurred_from must be before",
    ),
]


def test_bad_queries_are_refused_before_anything_is_asked_or_recorded(api: Api) -> None:
    _grant_dpo(api)
    for query, purpose, message in BAD_QUERIES:
        with pytest.raises(grpc.RpcError) as failure:
            api.stub.QueryRecords(
                audit_pb2.QueryRecordsRequest(actor_assertion=api.identity.assertion(DPO), query=query, purpose=purpose)
            )
        assert failure.value.code() == grpc.StatusCode.INVALID_ARGUMENT, message
        assert message in (failure.value.details() or "")
    assert api.identity.access_requests == []
    assert _log_rows(api.dsn, "SELECT count(*) FROM audit_log") == [(0,)]


def test_bad_paging_is_refused(api: Api) -> None:
    _grant_dpo(api)
    for page_size, page_token, message in [
        (501, "", "page_size must be at most 500"),
        (0, "not-a-token!", "page_token"),
        (0, "MA", "page_token"),
    ]:
        with pytest.raises(grpc.RpcError) as failure:
            _query(api, DPO, KIND.QUERY_KIND_REFUSED_ATTEMPTS, page_size=page_size, page_token=page_token)
        assert failure.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert message in (failure.value.details() or "")


def test_an_invalid_assertion_is_unauthenticated(api: Api) -> None:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    _grant_dpo(api)
    for assertion in (
        api.identity.assertion(DPO, key=Ed25519PrivateKey.generate()),  # forged
        api.identity.assertion(DPO, audience="checkin"),  # for another service
        api.identity.assertion(DPO, kind=None),  # not a person assertion
        "",
    ):
        with pytest.raises(grpc.RpcError) as failure:
            api.stub.QueryRecords(
                audit_pb2.QueryRecordsRequest(
                    actor_assertion=assertion,
                    query=audit_pb2.Query(kind=KIND.QUERY_KIND_REFUSED_ATTEMPTS),
                    purpose="why",
                )
            )
        assert failure.value.code() == grpc.StatusCode.UNAUTHENTICATED
    assert api.identity.access_requests == []


def test_when_identity_cannot_decide_nothing_is_answered(api: Api) -> None:
    _log_fixture(api)
    _grant_dpo(api)
    _query(api, DPO, KIND.QUERY_KIND_REFUSED_ATTEMPTS)  # keys fetched and cached while identity is up
    api.identity.unavailable = True
    with pytest.raises(grpc.RpcError) as failure:
        _query(api, DPO, KIND.QUERY_KIND_REFUSED_ATTEMPTS)
    assert failure.value.code() == grpc.StatusCode.UNAVAILABLE


def test_when_the_query_cannot_be_recorded_nothing_is_answered(api: Api) -> None:
    _log_fixture(api)
    _grant_dpo(api)
    with psycopg.connect(api.dsn, autocommit=True) as conn:
        conn.execute(
            "CREATE FUNCTION refuse() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN"
            " RAISE EXCEPTION 'log unwritable'; END $$"
        )
        conn.execute("CREATE TRIGGER refuse BEFORE INSERT ON audit_log FOR EACH STATEMENT EXECUTE FUNCTION refuse()")
    with pytest.raises(grpc.RpcError) as failure:
        _query(api, DPO, KIND.QUERY_KIND_REFUSED_ATTEMPTS)
    assert failure.value.code() == grpc.StatusCode.UNAVAILABLE
    assert "cannot record" in (failure.value.details() or "")
