"""The generic event format (JSON and CSV) and reference data over HTTP, against a real database and a fake identity:
accepted and keyed by pseudonym, idempotent, and refused whole with every bad record named."""

from __future__ import annotations

import base64
import json
from typing import Any

import psycopg
import pytest
from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from services.indicators.tests.conftest import SOURCE, SOURCE_KEY
from services.indicators.tests.fake_identity import FakeIdentity

AUTH = {"Authorization": "Basic " + base64.b64encode(f"{SOURCE}:{SOURCE_KEY}".encode()).decode()}
STUDENT_NUMBER = "canary-sn-40404040"


def event(**changes: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "event_id": "lib-0001",
        "student_id_kind": "student_number",
        "student_id": STUDENT_NUMBER,
        "type": "library_visit",
        "occurred_at": "2026-02-03T10:15:00Z",
    }
    base.update(changes)
    return base


def send_json(client: FlaskClient, events: list[dict[str, Any]]) -> TestResponse:
    return client.post("/events", data=json.dumps({"events": events}), content_type="application/json", headers=AUTH)


def send_csv(client: FlaskClient, text: str) -> TestResponse:
    return client.post("/events", data=text.encode(), content_type="text/csv", headers=AUTH)


def stored(dsn: str) -> list[tuple[Any, ...]]:
    with psycopg.connect(dsn) as conn:
        return conn.execute(
            "SELECT student_pseudonym, module_run_id, source, activity, amount, object_ref FROM engagement_events"
            " ORDER BY occurred_at, event_key"
        ).fetchall()


@pytest.fixture
def pseudonym(fake_identity: FakeIdentity) -> str:
    return fake_identity.add_student(student_number=STUDENT_NUMBER, email="canary.student@example.ac.uk")


def test_events_of_every_type_are_stored_by_pseudonym(client: FlaskClient, dsn: str, pseudonym: str) -> None:
    events = [
        event(event_id="e1"),
        event(event_id="e2", type="printing", amount=12),
        event(event_id="e3", type="meeting_attended", module_run_id="run-1"),
        event(event_id="e4", type="recording_watched", module_run_id="run-1", object_id="rec-17"),
        event(event_id="e5", type="assignment_submitted", module_run_id="run-1", object_id="essay-1"),
        event(
            event_id="e6",
            type="library_loan",
            student_id_kind="email",
            student_id="canary.student@example.ac.uk",
        ),
    ]
    response = send_json(client, events)
    assert response.status_code == 200, response.get_json()
    assert response.get_json() == {"received": 6, "stored": 6, "already_stored": 0, "unknown_students": []}
    rows = stored(dsn)
    assert {row[0] for row in rows} == {pseudonym}
    assert ("assignment", "submitted", "essay-1") in {(r[2], r[3], r[5]) for r in rows}
    with psycopg.connect(dsn) as conn:
        dump = str(conn.execute("SELECT array_agg(e::text) FROM engagement_events e").fetchall())
    assert STUDENT_NUMBER not in dump
    assert "canary.student" not in dump


def test_sending_the_same_events_again_changes_nothing(client: FlaskClient, dsn: str, pseudonym: str) -> None:
    events = [event(event_id=f"e{n}") for n in range(5)]
    send_json(client, events)
    again = send_json(client, events)
    assert again.get_json() == {"received": 5, "stored": 0, "already_stored": 5, "unknown_students": []}
    assert len(stored(dsn)) == 5


def test_csv_with_the_same_events_is_the_same_as_json(client: FlaskClient, dsn: str, pseudonym: str) -> None:
    text = (
        "event_id,student_id_kind,student_id,type,occurred_at,module_run_id,amount,object_id\r\n"
        f"e1,student_number,{STUDENT_NUMBER},printing,2026-02-03T10:15:00Z,,3,\r\n"
        f"e2,student_number,{STUDENT_NUMBER},recording_watched,2026-02-04T10:15:00+01:00,run-1,,rec-1\r\n"
    )
    response = send_csv(client, text)
    assert response.status_code == 200, response.get_json()
    assert response.get_json()["stored"] == 2
    assert send_json(client, [event(event_id="e1", type="printing", amount=3)]).get_json()["stored"] == 0


def test_unknown_students_are_skipped_and_counted_never_stored(client: FlaskClient, dsn: str, pseudonym: str) -> None:
    response = send_json(client, [event(event_id="e1"), event(event_id="e2", student_id="canary-sn-unknown")])
    assert response.get_json() == {"received": 2, "stored": 1, "already_stored": 0, "unknown_students": [1]}
    assert len(stored(dsn)) == 1


@pytest.mark.parametrize(
    ("bad", "reason"),
    [
        (event(type="gym_visit"), "type must be one of"),
        (event(occurred_at="2026-02-03 10:15"), "occurred_at has no time zone"),
        (event(occurred_at="yesterday"), "occurred_at is not an ISO 8601"),
        (event(occurred_at="2999-01-01T00:00:00Z"), "occurred_at is in the future"),
        (event(student_id_kind="name"), "student_id_kind: unknown identifier kind"),
        (event(amount=-1), "amount must be a whole number"),
        (event(full_name="Canary Person"), "unknown field 'full_name'"),
        (event(type="assignment_submitted"), "needs module_run_id and object_id"),
        ({"event_id": "x"}, "student_id_kind is required"),
    ],
)
def test_a_bad_event_refuses_the_batch_naming_it(
    client: FlaskClient, dsn: str, pseudonym: str, bad: dict[str, Any], reason: str
) -> None:
    response = send_json(client, [event(event_id="good-1"), {**bad, "event_id": bad.get("event_id", "bad-1")}])
    assert response.status_code == 400
    problems = response.get_json()["problems"]
    assert any(p["where"] == "event 1" and reason in p["rule"] for p in problems), problems
    assert "Canary" not in json.dumps(problems)
    assert stored(dsn) == []


def test_csv_problems_name_the_line(client: FlaskClient, dsn: str, pseudonym: str) -> None:
    text = (
        "event_id,student_id_kind,student_id,type,occurred_at\n"
        f"e1,student_number,{STUDENT_NUMBER},printing,2026-02-03T10:15:00Z\n"
        f"e2,student_number,{STUDENT_NUMBER},printing,not-a-time\n"
    )
    response = send_csv(client, text)
    assert response.status_code == 400
    assert response.get_json()["problems"][0]["where"] == "line 3"
    header = send_csv(client, "event_id,student,type\n")
    assert {p["rule"] for p in header.get_json()["problems"]} >= {"unknown column 'student'"}
    assert stored(dsn) == []


def test_reference_data_is_stored_once_and_corrections_update_it(client: FlaskClient, dsn: str, pseudonym: str) -> None:
    document: dict[str, Any] = {
        "module_runs": [
            {"module_run_id": "run-1", "institution_id": "uni", "starts_on": "2026-01-26", "ends_on": "2026-05-01"}
        ],
        "students": [
            {"student": {"kind": "student_number", "id": STUDENT_NUMBER}, "programme_id": "p1", "sponsored_visa": True}
        ],
        "enrolments": [
            {
                "student": {"kind": "student_number", "id": STUDENT_NUMBER},
                "module_run_id": "run-1",
                "registered_on": "2026-01-20",
            }
        ],
        "assignments": [{"assignment_id": "essay-1", "module_run_id": "run-1", "due_at": "2026-03-01T23:59:00Z"}],
        "sessions": [{"session_id": "lec-1", "module_run_id": "run-1", "starts_at": "2026-02-02T09:00:00Z"}],
        "activities": [{"activity_id": "https://moodle.example.ac.uk/course/view.php?id=7", "module_run_id": "run-1"}],
    }

    def send(body: dict[str, Any]) -> TestResponse:
        return client.post("/reference", data=json.dumps(body), content_type="application/json", headers=AUTH)

    first = send(document)
    assert first.status_code == 200, first.get_json()
    assert first.get_json()["changed"] == 6
    assert send(document).get_json()["changed"] == 0
    document["enrolments"][0]["unregistered_on"] = "2026-03-10"
    assert send(document).get_json()["changed"] == 1
    with psycopg.connect(dsn) as conn:
        row = conn.execute("SELECT student_pseudonym, unregistered_on::text FROM enrolments").fetchone()
        visa = conn.execute("SELECT sponsored_visa FROM students").fetchone()
    assert row == (pseudonym, "2026-03-10")
    assert visa == (True,)
    bad = send({"enrolments": [{"student": {"kind": "full_name", "id": "Canary Person"}, "module_run_id": "r"}]})
    assert bad.status_code == 400
    assert "unknown identifier kind" in bad.get_json()["problems"][0]["rule"]


def test_labels_and_titles_are_stored_checked_and_kept(client: FlaskClient, dsn: str) -> None:
    label = "CS101 Programming, 2026/27"
    document: dict[str, Any] = {
        "module_runs": [{"module_run_id": "run-1", "label": f"  {label} "}, {"module_run_id": "run-2"}],
        "assignments": [
            {
                "assignment_id": "cw-1",
                "module_run_id": "run-1",
                "due_at": "2026-03-01T23:59:00Z",
                "title": "Coursework 1",
            }
        ],
    }

    def send(body: dict[str, Any]) -> TestResponse:
        return client.post("/reference", data=json.dumps(body), content_type="application/json", headers=AUTH)

    def labels() -> list[tuple[Any, ...]]:
        with psycopg.connect(dsn) as conn:
            return [
                *conn.execute("SELECT module_run_id, label FROM module_runs ORDER BY 1").fetchall(),
                *conn.execute("SELECT assignment_id, title FROM assignments").fetchall(),
            ]

    first = send(document)
    assert first.status_code == 200, first.get_json()
    assert first.get_json()["changed"] == 3
    assert labels() == [("run-1", label), ("run-2", None), ("cw-1", "Coursework 1")]
    # The same again changes nothing; surrounding spaces are not a change.
    document["module_runs"][0]["label"] = label
    assert send(document).get_json()["changed"] == 0
    # A source that does not send labels does not erase them.
    assert send({"module_runs": [{"module_run_id": "run-1"}]}).get_json()["changed"] == 0
    assert labels()[0] == ("run-1", label)
    # A correction replaces it.
    document["assignments"][0]["title"] = "Coursework 1 (essay)"
    assert send(document).get_json()["changed"] == 1
    assert labels()[2] == ("cw-1", "Coursework 1 (essay)")

    refused = send(
        {
            "module_runs": [{"module_run_id": "run-3", "label": "ok"}, {"module_run_id": "run-4", "label": "x" * 121}],
            "assignments": [
                {"assignment_id": "cw-2", "module_run_id": "run-1", "due_at": "2026-03-01T23:59:00Z", "title": "a\nb"},
                {"assignment_id": "cw-3", "module_run_id": "run-1", "due_at": "2026-03-01T23:59:00Z", "title": 7},
                {"assignment_id": "cw-4", "module_run_id": "run-1", "due_at": "2026-03-01T23:59:00Z", "title": " "},
            ],
        }
    )
    assert refused.status_code == 400
    problems = [(p["where"], p["rule"]) for p in refused.get_json()["problems"]]
    assert problems == [
        ("module_runs[1]", "label is longer than 120 characters"),
        ("assignments[0]", "title must be printable text on one line (no control characters, tabs or line breaks)"),
        ("assignments[1]", "title must be text"),
        ("assignments[2]", "title must not be empty (leave it out when there is none)"),
    ]
    assert "x" * 121 not in refused.get_data(as_text=True)  # the rule, never the value
    assert labels() == [("run-1", label), ("run-2", None), ("cw-1", "Coursework 1 (essay)")]  # nothing stored
