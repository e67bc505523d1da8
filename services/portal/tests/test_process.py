"""`tend-portal web` as a real process (gunicorn, threaded workers) talking to the fake services over gRPC."""

from __future__ import annotations

import http.cookiejar
import json
import re
import sys
import urllib.parse
import urllib.request
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from tend_testing.processes import ServiceProcess, free_port

if TYPE_CHECKING:
    from services.portal.tests.conftest import FakeCheckin, FakeIdentity, FakePerson
    from tend_common.grpc_server import GrpcServer


@pytest.mark.e2e
def test_the_web_command_serves_the_portal_and_stops_on_sigterm(
    tmp_path: Path,
    fake_identity: tuple[FakeIdentity, GrpcServer],
    fake_checkin: tuple[FakeCheckin, GrpcServer],
    staff: FakePerson,
) -> None:
    port = free_port()
    command = [str(Path(sys.executable).parent / "tend-portal"), "web"]
    env = {
        "TEND_PORTAL_SECRET_KEY": "a test secret that is long enough",
        "TEND_PORTAL_HTTP_PORT": str(port),
        "TEND_PORTAL_IDENTITY_TARGET": f"127.0.0.1:{fake_identity[1].port}",
        "TEND_PORTAL_CHECKIN_TARGET": f"127.0.0.1:{fake_checkin[1].port}",
        "TEND_PORTAL_WEB_WORKERS": "1",
        "TEND_PORTAL_WEB_THREADS": "2",
    }
    portal = ServiceProcess("portal", command, env, tmp_path).start()
    try:
        portal.wait_http(port, "/readyz")
        base = f"http://127.0.0.1:{port}"
        opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar()))
        with opener.open(f"{base}/sign-in", timeout=5) as response:
            found = re.search(r'name="csrf_token" value="([^"]+)"', response.read().decode())
        assert found is not None
        form = {"username": staff.username, "password": "correct horse battery staple", "csrf_token": found.group(1)}
        with opener.open(f"{base}/sign-in", data=urllib.parse.urlencode(form).encode(), timeout=5) as response:
            assert response.url == f"{base}/"
            assert staff.display_name not in response.read().decode()
        with opener.open(f"{base}/me", timeout=5) as response:
            assert staff.display_name in response.read().decode()
    finally:
        exit_code = portal.terminate()

    assert exit_code == 0
    log = portal.read_log()
    assert staff.display_name not in log
    assert staff.username not in log
    lines = [json.loads(line) for line in log.splitlines() if line.strip()]
    assert any(line["logger"] == "gunicorn.access" and "/me" in line["message"] for line in lines)
    assert all(line["service"] == "portal" for line in lines)
