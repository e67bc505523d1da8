"""Loading an institution's templates: checked whole, every problem named with its place, nothing stored unless all
is well; then the institution's own text is what its students receive."""

from __future__ import annotations

import email
import email.policy
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import psycopg
import pytest

from services.notify.tests.conftest import Notify
from tend_notify.template_loading import TemplatesRejected, load_file, parse

LAYOUT = "<html><body>{content}<p>{support_name}: {support_url}</p></body></html>"


def _document(**changes: Any) -> dict[str, Any]:
    institution: dict[str, Any] = {
        "id": "uon",
        "name": "the University of Nottingham",
        "from_address": "tend@example.ac.uk",
        "support_name": "Student Services",
        "support_url": "https://www.example.ac.uk/studentservices",
        "time_zone": "Europe/London",
        "quiet_hours": {"start": "22:00", "end": "07:30"},
        "templates": [
            {
                "name": "supportive_enquiry",
                "kind": "enquiry",
                "subject": "Checking in, {student_name}",
                "body": "Hello {student_name},\n\nHow are things? {support_name} can help too: {support_url}",
                "html_layout": LAYOUT,
            }
        ],
    }
    institution.update(changes)
    return {"institutions": [institution]}


def test_a_good_file_is_parsed() -> None:
    loaded = parse(_document(), ("example.ac.uk",))
    assert [i.id for i in loaded.institutions] == ["uon"]
    assert loaded.institutions[0].quiet_hours_end.isoformat() == "07:30:00"
    assert [t.name for t in loaded.templates] == ["supportive_enquiry"]


def test_every_problem_is_named_with_its_place() -> None:
    document = _document(from_address="tend@elsewhere.example.com", time_zone="Mars/Base", support_url="http://x")
    document["institutions"][0]["templates"][0]["body"] = "You were flagged. Hello {nickname}"
    with pytest.raises(TemplatesRejected) as raised:
        parse(document, ("example.ac.uk",))
    problems = raised.value.problems
    assert "institutions[0].from_address: its domain is not in TEND_NOTIFY_ALLOWED_SENDER_DOMAINS" in problems
    assert "institutions[0].time_zone: 'Mars/Base' is not a known time zone" in problems
    assert "institutions[0].support_url: must be an https:// address" in problems
    joined = "\n".join(problems)
    assert 'institutions[0].templates[0]: body: an enquiry never says a student was flagged; remove "flagged"' in joined
    assert "institutions[0].templates[0]: body: {nickname} cannot be filled in" in joined
    assert "institutions[0].templates[0]: body: must keep {support_url}" in joined


def test_a_file_with_a_problem_changes_nothing(notify: Notify, tmp_path: Path) -> None:
    bad = _document()
    bad["institutions"][0]["templates"].append({"name": "x", "kind": "enquiry", "subject": "Hi", "body": "Hi"})
    path = tmp_path / "templates.json"
    path.write_text(json.dumps(bad))
    with pytest.raises(TemplatesRejected):
        load_file(notify.settings.database_url, path, ("example.ac.uk",))
    with psycopg.connect(notify.settings.database_url) as conn:
        assert conn.execute("SELECT count(*) FROM institutions WHERE id = 'uon'").fetchone() == (0,)


def test_the_institutions_own_text_is_sent(notify: Notify, tmp_path: Path) -> None:
    path = tmp_path / "templates.json"
    path.write_text(json.dumps(_document()))
    load_file(notify.settings.database_url, path, ("example.ac.uk",))
    load_file(notify.settings.database_url, path, ("example.ac.uk",))  # again: nothing changes
    subject, body = "Checking in, {student_name}", "Hello {student_name},\n\nHow are things? {support_url}"
    notify.request(institution_id="uon", subject=subject, body=body)
    assert notify.step()
    [mail] = notify.transport.sent
    message = email.message_from_bytes(mail.data, policy=email.policy.default)
    assert isinstance(message, email.message.EmailMessage)
    assert message["Subject"] == "Checking in, Sam"
    html = message.get_body(("html",))
    assert html is not None
    assert "<p>Student Services: https://www.example.ac.uk/studentservices</p>" in html.get_content()


def test_the_command_reports_problems_and_exits_1(notify: Notify, tmp_path: Path) -> None:
    path = tmp_path / "templates.json"
    path.write_text(json.dumps(_document(time_zone="Nowhere")))
    result = subprocess.run(
        [sys.executable, "-m", "tend_notify", "load-templates", str(path)],
        env={"PATH": "/usr/bin:/bin", "TEND_NOTIFY_DATABASE_URL": notify.settings.database_url},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 1
    assert "was not loaded; nothing changed" in result.stderr
    assert "institutions[0].time_zone: 'Nowhere' is not a known time zone" in result.stderr
