"""The check-in web app under Flask's test client, with real PostgreSQL, Redis and RabbitMQ and a fake identity over
real gRPC: the harness the web tests share (the fixtures are in conftest.py)."""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import pika
import psycopg
import redis
from flask import Flask
from flask.testing import FlaskClient
from pika.adapters.blocking_connection import BlockingChannel
from tend.checkin.v1 import events_pb2 as checkin_events_pb2

from tend_checkin import codes, session_store
from tend_checkin.handoff import COOKIE_NAME
from tend_checkin.sessions import TeachingSession, plan_session
from tend_checkin.settings import Settings
from tend_testing.fake_identity import FakeIdentity

ROUTING_KEY = "checkin.attendance_recorded.v1"
STEP = 15
# A step boundary (1_790_000_000 is a multiple of 15): 2026-09-22 13:46:40 UTC.
NOW = datetime.fromtimestamp(1_790_000_100, UTC)
PSEUDONYM = "psn_4f2c9a1b7e"
OTHER_PSEUDONYM = "psn_0a9d3e5c11"


class FixedClock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


@dataclass
class Web:
    app: Flask
    settings: Settings
    identity: FakeIdentity
    clock: FixedClock
    channel: BlockingChannel
    queue: str
    sessions: list[TeachingSession] = field(default_factory=list)

    def add_session(
        self,
        starts_in: timedelta = timedelta(minutes=5),
        room: str = "Main Building LT1",
        duration: timedelta = timedelta(minutes=50),
        allowed_networks: tuple[str, ...] = (),
    ) -> TeachingSession:
        session = plan_session(
            str(uuid.uuid4()),
            room,
            self.clock.now + starts_in,
            duration,
            timedelta(minutes=10),
            "staff-1",
            allowed_networks=allowed_networks,
        )
        with psycopg.connect(self.settings.database_url) as conn, conn.cursor() as cursor:
            session_store.insert_session(cursor, session)
        return session

    def code(self, session: TeachingSession, at: datetime | None = None) -> str:
        return codes.current_code(session.code_secret, at or self.clock.now, STEP, 6)

    def client(self, pseudonym: str | None = PSEUDONYM) -> FlaskClient:
        client = self.app.test_client()
        if pseudonym is not None:
            client.set_cookie(COOKIE_NAME, self.identity.sign(pseudonym))
        return client

    def messages(self) -> list[tuple[pika.BasicProperties, checkin_events_pb2.AttendanceRecorded]]:
        taken: list[tuple[pika.BasicProperties, checkin_events_pb2.AttendanceRecorded]] = []
        while True:
            method, properties, body = self.channel.basic_get(self.queue, auto_ack=True)
            if method is None:
                return taken
            taken.append((properties, checkin_events_pb2.AttendanceRecorded.FromString(body)))

    def redis_keys(self) -> list[bytes]:
        client = redis.Redis.from_url(self.settings.redis_url)
        try:
            return list(client.scan_iter(match=f"{self.settings.redis_prefix}*"))
        finally:
            client.close()


WebFactory = Callable[..., Web]


def csrf_token_of(html: str) -> str:
    found = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert found is not None, "the form has no CSRF token"
    return found.group(1)


def open_form(client: FlaskClient, session: TeachingSession, code: str = "") -> str:
    response = client.get(f"/c/{session.id}" + (f"?code={code}" if code else ""))
    assert response.status_code == 200
    return response.get_data(as_text=True)


def submit(client: FlaskClient, session: TeachingSession, code: str) -> tuple[int, str]:
    csrf = csrf_token_of(open_form(client, session))
    response = client.post(f"/c/{session.id}", data={"code": code, "csrf_token": csrf})
    return response.status_code, response.get_data(as_text=True)
