"""GET on the xAPI statements resource (xAPI-Communication.md 2.1.3, the single-statement form) through HTTP against
the real web app, a real database and a fake identity over gRPC: a source reads back what it sent, rebuilt from what
indicators kept, with people named by pseudonym only (the canary names, e-mails and account names never appear),
voided statements only by voidedStatementId, and every other query refused naming the parameter."""

from __future__ import annotations

import base64
import json
import uuid
from typing import Any

import psycopg
import pytest
from flask.testing import FlaskClient
from tend.identity.v1 import identity_pb2
from werkzeug.test import TestResponse

from services.indicators.tests.conftest import SOURCE
from services.indicators.tests.fake_identity import FakeIdentity, pseudonym_for
from services.indicators.tests.test_xapi import HEADERS, moodle_statements, post, statement
from tend_indicators.ingest.xapi_read import VOIDED_VERB

HOME = "https://tend.invalid/pseudonyms"  # the settings' default
LIBRARY = {
    "Authorization": "Basic " + base64.b64encode(b"library:library-test-key-" + b"l" * 24).decode(),
    "X-Experience-API-Version": "1.0.3",
}
CANARY_NAME = "Zelda Canary-7f3"
CANARY_MAIL = "zelda.canary-7f3@example.ac.uk"
CANARY_ACCOUNT = "zcanary7f3"
CANARY_INSTRUCTOR = "Ida Instructor-c41"
CANARY_INSTRUCTOR_MAIL = "ida.instructor-c41@example.ac.uk"


@pytest.fixture(autouse=True)
def students_by_account_and_mail(fake_identity: FakeIdentity) -> None:
    fake_identity.map_any_of.update({identity_pb2.IDENTIFIER_KIND_USERNAME, identity_pb2.IDENTIFIER_KIND_EMAIL})


def get(client: FlaskClient, query: str, headers: dict[str, str] | None = None) -> TestResponse:
    return client.get(f"/xapi/statements?{query}", headers=HEADERS if headers is None else headers)


def canary_statement(actor: dict[str, Any]) -> dict[str, Any]:
    return statement(
        actor=actor,
        context={
            "instructor": {"name": CANARY_INSTRUCTOR, "mbox": f"mailto:{CANARY_INSTRUCTOR_MAIL}"},
            "contextActivities": {"parent": [{"id": "https://moodle.example.ac.uk/course/view.php?id=7"}]},
        },
        result={"response": f"Essay by {CANARY_NAME}", "completion": True},
    )


def assert_no_canary(text: str) -> None:
    for canary in (CANARY_NAME, CANARY_MAIL, CANARY_ACCOUNT, CANARY_INSTRUCTOR, CANARY_INSTRUCTOR_MAIL, "Canary"):
        assert canary.lower() not in text.lower()


def test_each_of_the_moodle_statements_reads_back_with_the_actor_as_a_pseudonymous_account(
    client: FlaskClient,
) -> None:
    sent = moodle_statements()
    ids = post(client, sent).get_json()
    for original, statement_id in zip(sent, ids, strict=True):
        response = get(client, f"statementId={statement_id}")
        assert response.status_code == 200, response.get_json()
        assert response.headers["X-Experience-API-Version"] == "1.0.3"
        assert response.headers["X-Experience-API-Consistent-Through"]
        assert response.headers["Last-Modified"]
        body = response.get_json()
        assert body["id"] == statement_id
        pseudonym = pseudonym_for(original["actor"]["account"]["name"])
        assert body["actor"] == {"objectType": "Agent", "account": {"homePage": HOME, "name": pseudonym}}
        assert body["verb"] == {"id": original["verb"]["id"]}
        assert body["object"] == {"objectType": "Activity", "id": original["object"]["id"]}
        assert body["timestamp"] == original["timestamp"]
        assert body["stored"]
        assert body["version"] == "1.0.0"
        assert body["authority"]["account"]["name"] == SOURCE
        # The names Moodle sent (actor, instructor, definitions) are not kept, so they cannot come back.
        assert original["actor"]["name"] not in response.get_data(as_text=True)


@pytest.mark.parametrize(
    "actor",
    [
        pytest.param({"name": CANARY_NAME, "mbox": f"mailto:{CANARY_MAIL}"}, id="mbox"),
        pytest.param(
            {"name": CANARY_NAME, "account": {"homePage": "https://moodle.example.ac.uk", "name": CANARY_ACCOUNT}},
            id="account",
        ),
    ],
)
def test_the_canary_names_mails_and_account_names_never_come_back(
    client: FlaskClient, dsn: str, actor: dict[str, Any]
) -> None:
    sent = canary_statement(actor)
    assert post(client, [sent]).status_code == 200
    response = get(client, f"statementId={sent['id']}")
    assert response.status_code == 200
    text = response.get_data(as_text=True)
    assert_no_canary(text)
    identifier = CANARY_MAIL if "mbox" in actor else CANARY_ACCOUNT
    assert json.loads(text)["actor"]["account"] == {"homePage": HOME, "name": pseudonym_for(identifier)}
    # What is returned is what indicators keeps: the pseudonym, never the identifier it came from.
    with psycopg.connect(dsn) as conn:
        dump = " ".join(str(r) for r in conn.execute("SELECT row_to_json(x)::text FROM xapi_statements x"))
    assert_no_canary(dump)


def test_a_put_statement_reads_back_and_an_actor_who_is_not_a_student_is_not_named(
    client: FlaskClient, fake_identity: FakeIdentity
) -> None:
    fake_identity.map_any_of.clear()
    sent = canary_statement({"name": CANARY_INSTRUCTOR, "mbox": f"mailto:{CANARY_INSTRUCTOR_MAIL}"})
    put = client.put(
        f"/xapi/statements?statementId={sent['id']}",
        data=json.dumps(sent),
        content_type="application/json",
        headers=HEADERS,
    )
    assert put.status_code == 204
    response = get(client, f"statementId={sent['id']}")
    assert response.status_code == 200
    assert_no_canary(response.get_data(as_text=True))
    body = response.get_json()
    assert body["actor"] == {"objectType": "Agent", "account": {"homePage": HOME, "name": "not-kept"}}
    assert body["object"]["id"] == sent["object"]["id"]
    assert body["timestamp"] == "2026-02-03T10:15:00.000Z"


def test_another_source_cannot_read_it_and_an_unknown_id_is_404(client: FlaskClient) -> None:
    sent = statement()
    post(client, [sent])
    assert get(client, f"statementId={sent['id']}").status_code == 200
    other = get(client, f"statementId={sent['id']}", LIBRARY)
    unknown = get(client, f"statementId={uuid.uuid4()}")
    assert other.status_code == unknown.status_code == 404
    assert other.get_json() == unknown.get_json()
    assert unknown.headers["X-Experience-API-Version"] == "1.0.3"


def test_credentials_and_the_version_header_are_required_as_for_post(client: FlaskClient) -> None:
    sent = statement()
    post(client, [sent])
    query = f"statementId={sent['id']}"
    assert get(client, query, {"X-Experience-API-Version": "1.0.3"}).status_code == 401
    assert get(client, query, {"Authorization": HEADERS["Authorization"]}).status_code == 400
    old = get(client, query, {**HEADERS, "X-Experience-API-Version": "0.95"})
    assert old.status_code == 400
    assert old.get_json()["problems"][0]["where"] == "X-Experience-API-Version"


def test_a_voided_statement_is_found_only_by_voided_statement_id(client: FlaskClient) -> None:
    target = statement()
    voiding = statement(
        verb={"id": VOIDED_VERB, "display": {"en-US": "voided"}},
        object={"objectType": "StatementRef", "id": target["id"].upper()},
    )
    post(client, [target])
    assert get(client, f"voidedStatementId={target['id']}").status_code == 404  # not voided yet
    assert post(client, [voiding]).status_code == 200
    assert get(client, f"statementId={target['id']}").status_code == 404
    voided = get(client, f"voidedStatementId={target['id']}")
    assert voided.status_code == 200
    assert voided.get_json()["id"] == target["id"]
    body = get(client, f"statementId={voiding['id']}").get_json()
    assert body["object"] == {"objectType": "StatementRef", "id": target["id"]}
    assert get(client, f"voidedStatementId={voiding['id']}").status_code == 404


@pytest.mark.parametrize(
    ("query", "named", "words"),
    [
        ("statementId={id}&voidedStatementId={id}", "voidedStatementId", "not both"),
        ("statementId={id}&verb=http://adlnet.gov/expapi/verbs/voided", "verb", "cannot be combined"),
        ("voidedStatementId={id}&limit=1", "limit", "cannot be combined"),
        ("agent=%7B%22mbox%22%3A%22mailto%3Ax%40example.org%22%7D", "agent", "not supported"),
        ("", "statementId", "statement queries are not supported"),
        ("statementId={id}&attachments=true", "attachments", "not supported"),
        ("statementId={id}&format=full", "format", "ids, exact or canonical"),
        ("statementId=not-a-uuid", "statementId", "not a UUID"),
    ],
)
def test_other_queries_are_refused_naming_the_parameter(
    client: FlaskClient, query: str, named: str, words: str
) -> None:
    sent = statement()
    post(client, [sent])
    response = get(client, query.format(id=sent["id"]))
    assert response.status_code == 400
    (problem,) = response.get_json()["problems"]
    assert problem["where"] == named
    assert words in problem["rule"]
    assert response.headers["X-Experience-API-Version"] == "1.0.3"


def test_format_and_attachments_false_are_allowed(client: FlaskClient) -> None:
    sent = statement()
    post(client, [sent])
    for extra in ("format=ids", "format=canonical", "attachments=false"):
        assert get(client, f"statementId={sent['id']}&{extra}").status_code == 200


def test_a_statement_stored_before_its_parts_were_kept_is_rebuilt_from_its_engagement_record(
    client: FlaskClient, dsn: str
) -> None:
    sent = statement()
    post(client, [sent])
    with psycopg.connect(dsn) as conn:
        conn.execute("UPDATE xapi_statements SET occurred_at = NULL, object_type = NULL, object_ref = NULL")
    body = get(client, f"statementId={sent['id']}").get_json()
    assert body["object"] == {"objectType": "Activity", "id": sent["object"]["id"]}
    assert body["timestamp"] == "2026-02-03T10:15:00.000Z"
