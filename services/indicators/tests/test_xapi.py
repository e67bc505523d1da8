"""The xAPI statements resource against a real database and a fake identity over gRPC: Moodle's 190 real
statements, idempotent re-sends, every malformed case refused with a precise reason and nothing of its batch stored,
and conflicts (409) as xAPI 1.0.3 asks."""

from __future__ import annotations

import base64
import copy
import json
import uuid
from pathlib import Path
from typing import Any

import psycopg
import pytest
from flask.testing import FlaskClient
from tend.identity.v1 import identity_pb2
from werkzeug.test import TestResponse

from services.indicators.tests.conftest import SOURCE, SOURCE_KEY
from services.indicators.tests.fake_identity import FakeIdentity, pseudonym_for

STATEMENTS = (
    Path(__file__).resolve().parents[3].parent / "shared" / "data" / "xapi" / "moodle-logstore-xapi-statements.jsonl"
)
AUTH = "Basic " + base64.b64encode(f"{SOURCE}:{SOURCE_KEY}".encode()).decode()
HEADERS = {"Authorization": AUTH, "X-Experience-API-Version": "1.0.3"}


def moodle_statements() -> list[dict[str, Any]]:
    return [json.loads(line) for line in STATEMENTS.read_text().splitlines() if line.strip()]


def statement(**changes: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "id": str(uuid.uuid4()),
        "actor": {"objectType": "Agent", "account": {"homePage": "https://moodle.example.ac.uk", "name": "s1001"}},
        "verb": {"id": "http://id.tincanapi.com/verb/viewed", "display": {"en": "viewed"}},
        "object": {"id": "https://moodle.example.ac.uk/course/view.php?id=7", "objectType": "Activity"},
        "timestamp": "2026-02-03T10:15:00.000Z",
    }
    base.update(changes)
    return {k: v for k, v in base.items() if v is not ...}


def post(client: FlaskClient, body: Any, headers: dict[str, str] | None = None) -> TestResponse:
    return client.post(
        "/xapi/statements", data=json.dumps(body), content_type="application/json", headers=headers or HEADERS
    )


def counts(dsn: str) -> tuple[int, int]:
    with psycopg.connect(dsn) as conn:
        statements = conn.execute("SELECT count(*) FROM xapi_statements").fetchone()
        events = conn.execute("SELECT count(*) FROM engagement_events").fetchone()
    assert statements is not None
    assert events is not None
    return int(statements[0]), int(events[0])


@pytest.fixture(autouse=True)
def students_by_account(fake_identity: FakeIdentity) -> None:
    fake_identity.map_any_of.add(identity_pb2.IDENTIFIER_KIND_USERNAME)


def test_all_190_moodle_statements_are_accepted_mapped_and_stored_by_pseudonym(client: FlaskClient, dsn: str) -> None:
    rows = moodle_statements()
    assert len(rows) == 190
    response = post(client, rows)
    assert response.status_code == 200, response.get_json()
    assert response.headers["X-Experience-API-Version"] == "1.0.3"
    ids = response.get_json()
    assert len(ids) == 190
    # The sample repeats 21 statements exactly; sent without ids, identical statements are one statement.
    assert len(set(ids)) == 169
    assert counts(dsn) == (169, 169)
    with psycopg.connect(dsn) as conn:
        actors = {row[0] for row in conn.execute("SELECT DISTINCT student_pseudonym FROM engagement_events")}
        dump = " ".join(str(r) for r in conn.execute("SELECT row_to_json(e)::text FROM engagement_events e"))
        dump += " ".join(str(r) for r in conn.execute("SELECT row_to_json(x)::text FROM xapi_statements x"))
    assert actors == {pseudonym_for("1"), pseudonym_for("2"), pseudonym_for("anonymous")}
    assert "firstname" not in dump
    assert "lastname" not in dump


def test_sending_the_same_batch_again_changes_nothing(client: FlaskClient, dsn: str) -> None:
    rows = moodle_statements()
    first = post(client, rows).get_json()
    before = counts(dsn)
    again = post(client, rows)
    assert again.status_code == 200
    assert again.get_json() == first
    assert counts(dsn) == before


def test_put_stores_once_and_a_conflicting_put_is_409(client: FlaskClient, dsn: str) -> None:
    body = statement()
    statement_id = body.pop("id")
    url = f"/xapi/statements?statementId={statement_id}"
    put = client.put(url, data=json.dumps(body), content_type="application/json", headers=HEADERS)
    assert put.status_code == 204
    repeat = client.put(url, data=json.dumps(body), content_type="application/json", headers=HEADERS)
    assert repeat.status_code == 204
    assert counts(dsn) == (1, 1)
    changed = {**body, "verb": {"id": "http://adlnet.gov/expapi/verbs/completed"}}
    conflict = client.put(url, data=json.dumps(changed), content_type="application/json", headers=HEADERS)
    assert conflict.status_code == 409
    assert "different content" in conflict.get_json()["problems"][0]["rule"]
    assert conflict.get_json()["problems"][0]["id"] == statement_id
    assert counts(dsn) == (1, 1)


def test_same_statement_differing_only_where_the_spec_allows_is_no_conflict(client: FlaskClient, dsn: str) -> None:
    body = statement()
    assert post(client, [body]).status_code == 200
    restated = copy.deepcopy(body)
    restated["verb"]["display"] = {"en-GB": "looked at"}
    restated["timestamp"] = "2026-02-03T11:15:00.000+01:00"  # the same instant
    restated["object"]["definition"] = {"name": {"en": "Course page"}}
    restated["version"] = "1.0.3"
    response = post(client, [restated])
    assert response.status_code == 200, response.get_json()
    assert counts(dsn) == (1, 1)


def test_a_batch_with_one_conflict_stores_nothing(client: FlaskClient, dsn: str) -> None:
    stored = statement()
    assert post(client, [stored]).status_code == 200
    clash = {**stored, "object": {"id": "https://moodle.example.ac.uk/mod/quiz/view.php?id=9"}}
    response = post(client, [statement(), clash])
    assert response.status_code == 409
    assert response.get_json()["problems"][0]["where"] == "statement 1"
    assert counts(dsn) == (1, 1)


BAD_STATEMENTS = [
    pytest.param(statement(actor=...), "actor: is required", id="missing actor"),
    pytest.param(statement(verb={"id": "viewed"}), "verb.id: is not an IRI", id="bad verb IRI"),
    pytest.param(
        statement(timestamp="3 Feb 2026 10:15"), "timestamp: is not an ISO 8601 timestamp", id="bad timestamp"
    ),
    pytest.param(statement(timestamp="2026-02-03T10:15:00-00:00"), "timestamp: is not an ISO 8601", id="-00:00 offset"),
    pytest.param(statement(grade="A"), "grade: is not a property the xAPI specification allows", id="unknown property"),
    pytest.param(statement(id="12345"), "id: is not a UUID", id="bad id"),
    pytest.param(
        statement(actor={"mbox": "mailto:a@example.ac.uk", "account": {"homePage": "https://x.example", "name": "a"}}),
        "exactly one of mbox",
        id="two identifiers",
    ),
    pytest.param(statement(result={"success": "true"}), "result.success: must be true or false", id="string boolean"),
    pytest.param(
        statement(result={"score": {"scaled": 1.5}}), "result.score.scaled: must be between", id="score range"
    ),
    pytest.param(statement(context={"registration": None}), "null values are not allowed", id="null value"),
    pytest.param(statement(version="2.0.0"), "version: must be a 1.0.x version", id="statement version"),
]


@pytest.mark.parametrize(("bad", "reason"), BAD_STATEMENTS)
def test_a_malformed_statement_refuses_its_whole_batch_with_a_precise_reason(
    client: FlaskClient, dsn: str, bad: dict[str, Any], reason: str
) -> None:
    good = [statement(), statement()]
    response = post(client, [good[0], bad, good[1]])
    assert response.status_code == 400
    problems = response.get_json()["problems"]
    assert len(problems) == 1
    assert problems[0]["where"] == "statement 1"
    assert problems[0]["id"] == bad.get("id", "")
    assert reason in problems[0]["rule"]
    assert counts(dsn) == (0, 0)


def test_a_duplicate_id_within_a_batch_is_400(client: FlaskClient, dsn: str) -> None:
    first = statement()
    second = statement(id=first["id"], verb={"id": "http://adlnet.gov/expapi/verbs/completed"})
    response = post(client, [first, second])
    assert response.status_code == 400
    problem = response.get_json()["problems"][0]
    assert (problem["where"], problem["id"]) == ("statement 1", first["id"])
    assert "same id as statement 0" in problem["rule"]
    assert counts(dsn) == (0, 0)


@pytest.mark.parametrize(
    ("version", "reason"),
    [
        (None, "header is missing"),
        ("0.95", "not supported"),
        ("1.1.0", "not supported"),
        ("one", "not supported"),
    ],
)
def test_the_version_header_is_required_and_must_be_1_0_x(
    client: FlaskClient, dsn: str, version: str | None, reason: str
) -> None:
    headers = {"Authorization": AUTH}
    if version is not None:
        headers["X-Experience-API-Version"] = version
    response = post(client, [statement()], headers=headers)
    assert response.status_code == 400
    assert response.get_json()["problems"][0]["where"] == "X-Experience-API-Version"
    assert reason in response.get_json()["problems"][0]["rule"]
    assert counts(dsn) == (0, 0)


def test_version_1_0_is_read_as_1_0_0(client: FlaskClient) -> None:
    response = post(client, [statement()], headers={**HEADERS, "X-Experience-API-Version": "1.0"})
    assert response.status_code == 200


@pytest.mark.parametrize(
    "authorization",
    [None, "Basic " + base64.b64encode(f"{SOURCE}:wrong-key".encode()).decode(), "Bearer something"],
)
def test_only_a_known_source_with_its_key_may_send(client: FlaskClient, dsn: str, authorization: str | None) -> None:
    headers = {"X-Experience-API-Version": "1.0.3"}
    if authorization:
        headers["Authorization"] = authorization
    response = post(client, [statement()], headers=headers)
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"].startswith("Basic")
    assert counts(dsn) == (0, 0)


def test_put_requires_a_matching_statement_id(client: FlaskClient, dsn: str) -> None:
    body = statement()
    missing = client.put("/xapi/statements", data=json.dumps(body), content_type="application/json", headers=HEADERS)
    assert missing.status_code == 400
    other = client.put(
        f"/xapi/statements?statementId={uuid.uuid4()}",
        data=json.dumps(body),
        content_type="application/json",
        headers=HEADERS,
    )
    assert other.status_code == 400
    assert "differs from statementId" in other.get_json()["problems"][0]["rule"]
    assert counts(dsn) == (0, 0)


def test_actors_who_are_not_students_are_acknowledged_but_not_kept(
    client: FlaskClient, fake_identity: FakeIdentity, dsn: str
) -> None:
    fake_identity.map_any_of.clear()
    staff = statement(actor={"mbox": "mailto:Lecturer@Example.ac.uk", "name": "A Lecturer"})
    hashed = statement(actor={"mbox_sha1sum": "a" * 40})
    response = post(client, [staff, hashed])
    assert response.status_code == 200
    assert counts(dsn) == (2, 0)
    with psycopg.connect(dsn) as conn:
        dump = str(conn.execute("SELECT array_agg(row_to_json(x)::text) FROM xapi_statements x").fetchone())
    assert "lecturer" not in dump.lower()


def test_nothing_is_stored_while_identity_is_unavailable(
    client: FlaskClient, fake_identity: FakeIdentity, dsn: str
) -> None:
    fake_identity.unavailable = True
    response = post(client, [statement()])
    assert response.status_code == 503
    assert counts(dsn) == (0, 0)
    fake_identity.unavailable = False
    assert post(client, [statement()]).status_code == 200


def test_statements_of_a_course_belong_to_its_module_run(client: FlaskClient, dsn: str) -> None:
    with psycopg.connect(dsn) as conn:
        conn.execute(
            "INSERT INTO activity_module_runs VALUES ('http://www.example.org/course/view.php?id=2', 'run-moodle-2')"
        )
    post(client, moodle_statements())
    with psycopg.connect(dsn) as conn:
        runs: dict[str, int] = dict(
            conn.execute("SELECT module_run_id, count(*) FROM engagement_events GROUP BY 1").fetchall()
        )
    assert runs.get("run-moodle-2", 0) > 100
    assert set(runs) <= {"run-moodle-2", ""}
