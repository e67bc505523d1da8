"""The console script's commands as real processes: clear refusals for missing settings and for a file that cannot
be imported, and a file import through the command against a real database and the fake identity."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from services.indicators.tests.fake_identity import FakeIdentity
from tend_common.service_auth import generate_service_key
from tend_indicators.settings import Settings
from tend_testing.processes import free_port

SCRIPT = str(Path(sys.executable).with_name("tend-indicators"))
MOODLE_LOG = Path(__file__).resolve().parents[3].parent / "shared" / "data" / "moodle-log" / "course-activity-log.csv"


def run(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [SCRIPT, *args], env={**os.environ, **env}, capture_output=True, text=True, check=False, timeout=60
    )


def test_web_refuses_to_start_without_sources_or_a_service_key() -> None:
    base = {"TEND_INDICATORS_HTTP_PORT": str(free_port()), "TEND_INDICATORS_SERVICE_KEY": generate_service_key()}
    no_sources = run(["web"], {**base, "TEND_INDICATORS_SOURCE_CREDENTIALS": ""})
    assert no_sources.returncode == 2
    assert "TEND_INDICATORS_SOURCE_CREDENTIALS is not set" in no_sources.stderr
    no_key = run(
        ["web"], {**base, "TEND_INDICATORS_SOURCE_CREDENTIALS": "moodle:" + "k" * 30, "TEND_INDICATORS_SERVICE_KEY": ""}
    )
    assert no_key.returncode == 2
    assert "TEND_INDICATORS_SERVICE_KEY is not set" in no_key.stderr
    short = run(["web"], {**base, "TEND_INDICATORS_SOURCE_CREDENTIALS": "moodle:short"})
    assert short.returncode == 2
    assert "shorter than 24 characters" in short.stderr
    assert "short" not in short.stderr.replace("shorter", "")


def test_import_commands_refuse_whole_files_and_import_good_ones(
    indicators_settings: Settings, fake_identity: FakeIdentity, tmp_path: Path
) -> None:
    env = {
        "TEND_INDICATORS_DATABASE_URL": indicators_settings.database_url,
        "TEND_INDICATORS_IDENTITY_TARGET": indicators_settings.identity_target,
    }
    refused = run(
        ["import-moodle-log", str(MOODLE_LOG), "--module-run-id", "run-1", "--academic-year-starts-on", "2017-09-01"],
        env,
    )
    assert refused.returncode == 1
    assert "does not map people by name" in refused.stderr
    fake_identity.add_student(student_number="canary-sn-1")
    events = tmp_path / "library.json"
    events.write_text(
        json.dumps(
            {
                "events": [
                    {
                        "event_id": "visit-1",
                        "student_id_kind": "student_number",
                        "student_id": "canary-sn-1",
                        "type": "library_visit",
                        "occurred_at": "2026-02-03T10:15:00Z",
                    }
                ]
            }
        )
    )
    first = run(["import-events", str(events), "--source", "library"], env)
    assert first.returncode == 0, first.stderr
    assert "1 events: 1 new" in first.stdout
    again = run(["import-events", str(events), "--source", "library"], env)
    assert "1 events: 0 new, 1 already stored" in again.stdout
    assert "canary-sn-1" not in first.stdout + first.stderr + again.stderr
