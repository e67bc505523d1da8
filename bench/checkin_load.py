"""An asyncio load generator for the student check-in pages: plain HTTP/1.1 on keep-alive connections (the standard
library only), so the generator spends as little of the shared CPU as possible.

Each simulated phone keeps its own cookies (the check-in token identity issued, and the check-in host's browser
session with its CSRF token), fetched once before the timed part, as a phone that opened the page would have them.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from urllib.parse import urlencode, urlsplit

from tend_checkin import codes

TOKEN_COOKIE = "tend_checkin_token"  # noqa: S105 (a cookie name, not a secret)
# The check-in service's defaults, which the benchmark runs with.
STEP_SECONDS = 15
DIGITS = 6
_CSRF = re.compile(rb'name="csrf_token" value="([^"]+)"')
_SET_COOKIE = re.compile(rb"^set-cookie:\s*([^=]+)=([^;]*)", re.IGNORECASE | re.MULTILINE)


@dataclass
class Phone:
    """One student's browser: its cookies and the CSRF token of its browser session on the check-in host."""

    pseudonym: str
    cookies: dict[str, str]
    csrf_token: str = ""

    def cookie_header(self) -> str:
        return "; ".join(f"{name}={value}" for name, value in self.cookies.items())


@dataclass(frozen=True)
class Attempt:
    """One press of "Check in"."""

    phone: Phone
    session_id: str
    # The code typed; when empty, the code on the screen at the moment of sending (from `secret`).
    code: str = ""
    secret: bytes = b""
    # When to send it, in seconds from the start of an open-loop run (ignored in a closed loop).
    at: float = 0.0

    def code_now(self) -> str:
        if self.code:
            return self.code
        return codes.current_code(self.secret, datetime.now(UTC), STEP_SECONDS, DIGITS)


@dataclass(frozen=True)
class Outcome:
    attempt: Attempt
    status: int
    # "recorded", "already", "wrong", "locked", "mixup", "unavailable", "error" or "other".
    result: str
    latency: float


@dataclass
class RunResult:
    outcomes: list[Outcome] = field(default_factory=list)
    elapsed: float = 0.0


def classify(status: int, body: bytes) -> str:
    if status == 200 and b"You are checked in" in body:
        return "recorded"
    if status == 200 and b"You are already checked in" in body:
        return "already"
    if b"too many wrong codes" in body:
        return "locked"
    if b"previous class in this room" in body:
        return "mixup"
    if b"not right or has expired" in body:
        return "wrong"
    if status in {502, 503, 504}:
        return "unavailable"
    return "other"


class Connection:
    """One keep-alive HTTP/1.1 connection; reopened after the server closes it."""

    def __init__(self, host: str, port: int) -> None:
        self._host = host
        self._port = port
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None

    async def request(
        self, method: str, path: str, headers: dict[str, str], body: bytes = b""
    ) -> tuple[int, bytes, bytes]:
        """(status, raw headers, body); reconnects once if a kept-alive connection was closed under it."""
        for attempt in (1, 2):
            if self._writer is None:
                self._reader, self._writer = await asyncio.open_connection(self._host, self._port)
            try:
                return await self._exchange(method, path, headers, body)
            except (ConnectionError, asyncio.IncompleteReadError):
                await self.close()
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    async def _exchange(self, method: str, path: str, headers: dict[str, str], body: bytes) -> tuple[int, bytes, bytes]:
        assert self._reader is not None
        assert self._writer is not None
        head = f"{method} {path} HTTP/1.1\r\nHost: {self._host}:{self._port}\r\nContent-Length: {len(body)}\r\n"
        head += "".join(f"{name}: {value}\r\n" for name, value in headers.items())
        self._writer.write(head.encode() + b"\r\n" + body)
        await self._writer.drain()
        raw_head = await self._reader.readuntil(b"\r\n\r\n")
        status = int(raw_head[9:12])
        length_match = re.search(rb"^content-length:\s*(\d+)", raw_head, re.IGNORECASE | re.MULTILINE)
        length = int(length_match.group(1)) if length_match else 0
        payload = await self._reader.readexactly(length) if length else b""
        if re.search(rb"^connection:\s*close", raw_head, re.IGNORECASE | re.MULTILINE):
            await self.close()
        return status, raw_head, payload

    async def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            with contextlib.suppress(ConnectionError, OSError):
                await self._writer.wait_closed()
        self._reader = self._writer = None


def _split(base_url: str) -> tuple[str, int]:
    parts = urlsplit(base_url)
    return parts.hostname or "127.0.0.1", parts.port or 80


async def prepare_phones(base_url: str, session_id: str, phones: Sequence[Phone], concurrency: int = 16) -> None:
    """Opens the check-in form once per phone, as a phone that scanned the code would, keeping the browser-session
    cookie and the CSRF token it carries."""
    host, port = _split(base_url)
    queue: asyncio.Queue[Phone] = asyncio.Queue()
    for phone in phones:
        queue.put_nowait(phone)

    async def worker() -> None:
        connection = Connection(host, port)
        try:
            while not queue.empty():
                phone = queue.get_nowait()
                status, head, body = await connection.request(
                    "GET", f"/c/{session_id}", {"Cookie": phone.cookie_header()}
                )
                found = _CSRF.search(body)
                if status != 200 or found is None:
                    raise RuntimeError(f"the check-in form did not open: {status}")
                phone.csrf_token = found.group(1).decode()
                for name, value in _SET_COOKIE.findall(head):
                    phone.cookies[name.decode().strip()] = value.decode()
        finally:
            await connection.close()

    await asyncio.gather(*(worker() for _ in range(concurrency)))


async def _send(connection: Connection, attempt: Attempt) -> Outcome:
    form = urlencode({"code": attempt.code_now(), "csrf_token": attempt.phone.csrf_token}).encode()
    headers = {
        "Cookie": attempt.phone.cookie_header(),
        "Content-Type": "application/x-www-form-urlencoded",
    }
    started = time.perf_counter()
    try:
        status, _head, body = await connection.request("POST", f"/c/{attempt.session_id}", headers, form)
    except (OSError, asyncio.IncompleteReadError):
        return Outcome(attempt, 0, "error", time.perf_counter() - started)
    return Outcome(attempt, status, classify(status, body), time.perf_counter() - started)


async def closed_loop(base_url: str, attempts: Sequence[Attempt], concurrency: int) -> RunResult:
    """As fast as the server answers, `concurrency` requests in flight at a time."""
    host, port = _split(base_url)
    result = RunResult()
    next_index = 0

    async def worker() -> None:
        nonlocal next_index
        connection = Connection(host, port)
        try:
            while next_index < len(attempts):
                attempt = attempts[next_index]
                next_index += 1
                result.outcomes.append(await _send(connection, attempt))
        finally:
            await connection.close()

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    result.elapsed = time.perf_counter() - started
    return result


async def open_loop(base_url: str, attempts: Sequence[Attempt], max_connections: int = 256) -> RunResult:
    """Each attempt sent at its own time (`at`) whether or not earlier ones were answered, so a slow server shows
    as latency rather than a slower arrival rate. Latency counts from the scheduled time."""
    host, port = _split(base_url)
    idle: list[Connection] = [Connection(host, port) for _ in range(max_connections)]
    available = asyncio.Semaphore(max_connections)
    result = RunResult()
    loop = asyncio.get_running_loop()
    start = loop.time()

    async def fire(attempt: Attempt) -> None:
        scheduled = start + attempt.at
        if scheduled > loop.time():
            await asyncio.sleep(scheduled - loop.time())
        async with available:
            connection = idle.pop()
            try:
                outcome = await _send(connection, attempt)
            finally:
                idle.append(connection)
        result.outcomes.append(Outcome(attempt, outcome.status, outcome.result, loop.time() - scheduled))

    started = time.perf_counter()
    await asyncio.gather(*(fire(attempt) for attempt in attempts))
    result.elapsed = time.perf_counter() - started
    for connection in idle:
        await connection.close()
    return result


async def trivial_closed_loop(base_url: str, requests: int, concurrency: int) -> float:
    """Requests per second of a POST to the trivial endpoint, the same way."""
    host, port = _split(base_url)
    remaining = requests

    async def worker() -> None:
        nonlocal remaining
        connection = Connection(host, port)
        try:
            while remaining > 0:
                remaining -= 1
                status, _head, _body = await connection.request(
                    "POST", "/ping", {"Content-Type": "application/x-www-form-urlencoded"}, b"code=123456"
                )
                if status != 200:
                    raise RuntimeError(f"trivial endpoint answered {status}")
        finally:
            await connection.close()

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return requests / (time.perf_counter() - started)


def percentile(values: Sequence[float], fraction: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]
