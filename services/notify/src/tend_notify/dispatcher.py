"""Sending: threads that take due messages from the database, each over its own reused SMTP connection.

For each message: hold it (quiet hours, the global rate limit) or resolve the addresses through identity, render
and compose it, record the attempt, hand it to the mail server, and record the outcome, publishing each status
change to the case through the outbox. The schedule of retries lives in the database (`next_attempt_at`), so no
thread sleeps on a message and a restart loses nothing.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
from psycopg_pool import ConnectionPool

from tend_notify import message_store, template_store
from tend_notify.composing import AddressRejected, compose
from tend_notify.contacts import (
    FOLLOW_UP,
    SUPPORTIVE_ENQUIRY,
    Contact,
    ContactDirectory,
    ContactsUnavailable,
    ContactUnknown,
)
from tend_notify.guards import RateLimiter, quiet_until
from tend_notify.message_store import Message
from tend_notify.metrics import ATTEMPT_OUTCOMES, SEND_SECONDS
from tend_notify.recovery import UNCERTAIN_REASON
from tend_notify.settings import Settings
from tend_notify.templates import (
    ENQUIRY,
    Institution,
    RenderedMessage,
    Template,
    check_rendered,
    render,
    render_neutral,
)
from tend_notify.transport import DEFERRED as OUTCOME_DEFERRED
from tend_notify.transport import SENT, UNCERTAIN, MailTransport, OutgoingMail, SendOutcome

log = logging.getLogger(__name__)

Clock = Callable[[], datetime]
# Institutions and templates rarely change; they are read again after this long.
_SETUP_TTL_SECONDS = 60.0
_OUTCOME_STATUS = {SENT: "sent", OUTCOME_DEFERRED: "deferred", "bounced": "bounced", "failed": "failed"}


def utc_now() -> datetime:
    return datetime.now(UTC)


def backoff_seconds(tries: int, base: float, cap: float, rng: random.Random) -> float:
    """Exponential back-off with "equal jitter": half the delay fixed, half random, so retries of many messages after
    one outage spread out instead of arriving together."""
    delay: float = min(cap, base * 2.0 ** max(0, tries - 1))
    return delay / 2 + rng.uniform(0, delay / 2)


@dataclass(frozen=True)
class Prepared:
    """A message ready to hand over, with what it needs to be recorded."""

    message: Message
    mail: OutgoingMail
    attempt: int


class Dispatcher:
    """Sends due messages; `dispatch_once` is one step of one sending thread (and what the tests drive)."""

    def __init__(
        self,
        pool: ConnectionPool,
        settings: Settings,
        contacts: ContactDirectory,
        limiter: RateLimiter,
        owner_key: int,
        clock: Clock = utc_now,
        rng: random.Random | None = None,
    ) -> None:
        self._pool = pool
        self._settings = settings
        self._contacts = contacts
        self._limiter = limiter
        self._owner_key = owner_key
        self._clock = clock
        self._rng = rng or random.Random()  # noqa: S311 (jitter, not secrets)
        self._setups: dict[tuple[str, str], tuple[tuple[Institution | None, Template | None], float]] = {}
        self._setups_lock = threading.Lock()
        self._stopping = threading.Event()
        self._wake = threading.Event()
        self._threads: list[threading.Thread] = []

    # --- threads ---

    def start(self, transport_factory: Callable[[], MailTransport]) -> None:
        for number in range(self._settings.smtp_connections):
            thread = threading.Thread(target=self._run, args=(transport_factory,), name=f"sender-{number}", daemon=True)
            thread.start()
            self._threads.append(thread)

    def wake(self) -> None:
        """A message may be due now (the intake just queued one)."""
        self._wake.set()

    def stop(self, timeout: float = 30.0) -> None:
        """Stops taking messages; each thread finishes (and records) the one in hand."""
        self._stopping.set()
        self._wake.set()
        for thread in self._threads:
            thread.join(timeout)

    def _run(self, transport_factory: Callable[[], MailTransport]) -> None:
        transport = transport_factory()
        idle_since = time.monotonic()
        try:
            while not self._stopping.is_set():
                try:
                    handled = self.dispatch_once(transport)
                except Exception as exc:
                    log.exception("sending step failed", extra={"fields": {"error": type(exc).__name__}})
                    handled = False
                    self._stopping.wait(1.0)
                if handled:
                    idle_since = time.monotonic()
                    continue
                if time.monotonic() - idle_since > self._settings.smtp_idle_seconds:
                    transport.close()
                self._wake.wait(self._settings.dispatch_poll_seconds)
                self._wake.clear()
        finally:
            transport.close()

    # --- one step ---

    def dispatch_once(self, transport: MailTransport) -> bool:
        """Takes one due message and sends, holds or fails it; False when none was due."""
        prepared = self._prepare()
        if prepared is None:
            return False
        if isinstance(prepared, Prepared):
            started = time.perf_counter()
            outcome = self._hand_over(transport, prepared)
            SEND_SECONDS.observe(time.perf_counter() - started)
            self._until_recorded(lambda: self._record_outcome(prepared, outcome))
        return True

    def _prepare(self) -> Prepared | bool | None:
        """In one transaction, with the message locked: hold it, fail it, or record the attempt about to be made."""
        now = self._clock()
        # Pipeline mode: statements whose results are not read at once travel together, so a message costs a few
        # round trips to the database rather than one per statement.
        with self._pool.connection() as conn, conn.pipeline(), conn.transaction(), conn.cursor() as cur:
            message = message_store.lock_next_due(cur, now)
            if message is None:
                return None
            institution, template = self._setup(conn, message.institution_id, message.template_name)
            if institution is None or template is None:
                message_store.set_status(cur, message, "failed", "the institution or template is not configured")
                return True
            held = self._hold(cur, message, institution, now)
            if held:
                return True
            try:
                rendered, recipient, from_name, reply_to = self._render(message, institution, template)
                mail = compose(
                    rendered,
                    request_id=message.request_id,
                    from_name=from_name,
                    from_address=institution.from_address,
                    to_name=recipient.preferred_name,
                    to_address=recipient.email,
                    reply_to=reply_to,
                    sent_at=now,
                    allowed_sender_domains=self._settings.allowed_sender_domains,
                    automatic=message.kind != ENQUIRY,
                )
            except ContactUnknown:
                message_store.set_status(cur, message, "failed", "identity does not know the recipient")
                return True
            except ContactsUnavailable:
                self._defer(cur, message, "identity could not be asked for the address", message.tries + 1)
                return True
            except (AddressRejected, _RenderRejected) as exc:
                message_store.set_status(cur, message, "failed", str(exc))
                return True
            # This commit need not wait for the disk: the point of no return, recorded next and waited for, is
            # flushed with everything before it. Lost to a database crash, the attempt was never handed over.
            cur.execute("SET LOCAL synchronous_commit = off")
            attempt = message_store.start_attempt(cur, message, self._owner_key)
        return Prepared(message=message, mail=mail, attempt=attempt)

    def _hold(self, cur: psycopg.Cursor[Any], message: Message, institution: Institution, now: datetime) -> bool:
        if message.kind == ENQUIRY:
            until = quiet_until(now, institution.time_zone, institution.quiet_hours_start, institution.quiet_hours_end)
            if until is not None:
                message_store.postpone(cur, message.request_id, until, "held until the student's quiet hours end")
                return True
        wait = self._limiter.acquire("global", self._settings.global_limit_per_minute, 60)
        if wait > 0:
            message_store.postpone(
                cur, message.request_id, now + timedelta(seconds=wait + self._rng.uniform(0, 1)), "rate limited"
            )
            return True
        return False

    def _render(
        self, message: Message, institution: Institution, template: Template
    ) -> tuple[RenderedMessage, Contact, str, str]:
        """The rendered message, its recipient, the From display name and the Reply-To address."""
        if message.subject is None or message.body is None:
            raise _RenderRejected("the message text is no longer held")
        values = institution.values()
        if message.kind == ENQUIRY:
            sender_id = message.sender_person_id or ""
            recipient = self._contacts.student(message.student_pseudonym or "", SUPPORTIVE_ENQUIRY, sender_id)
            sender = self._contacts.staff(sender_id, SUPPORTIVE_ENQUIRY, sender_id)
            values.update(
                student_name=recipient.preferred_name, sender_name=sender.preferred_name, sender_email=sender.email
            )
            from_name, reply_to = f"{sender.preferred_name} ({institution.name})", sender.email
        else:
            recipient = self._contacts.staff(message.recipient_person_id or "", FOLLOW_UP, "")
            values.update(recipient_name=recipient.preferred_name, portal_url=self._settings.portal_base_url)
            from_name, reply_to = f"Tend ({institution.name})", ""
        # The rules are checked on the message rendered with stand-ins for people's names and addresses (a student
        # called Flagg is no breach); everything else in it (the text, the layout, the support details) is real.
        problems = check_rendered(
            render_neutral(
                message.subject, message.body, template.html_layout, institution, self._settings.portal_base_url
            )
        )
        if problems:
            raise _RenderRejected("the rendered message breaks the content rules: " + "; ".join(map(str, problems)))
        return render(message.subject, message.body, template.html_layout, values), recipient, from_name, reply_to

    def _defer(self, cur: psycopg.Cursor[Any], message: Message, reason: str, tries: int) -> None:
        if tries >= self._settings.max_attempts:
            message_store.set_status(cur, message, "failed", f"gave up after {tries} tries: {reason}", tries=tries)
            return
        delay = backoff_seconds(tries, self._settings.retry_base_seconds, self._settings.retry_max_seconds, self._rng)
        due = self._clock() + timedelta(seconds=delay)
        message_store.set_status(cur, message, "deferred", reason, next_attempt_at=due, tries=tries)

    def _hand_over(self, transport: MailTransport, prepared: Prepared) -> SendOutcome:
        handed_over = False

        def point_of_no_return() -> None:
            nonlocal handed_over
            with self._pool.connection() as conn:
                if not message_store.mark_data_sent(conn, prepared.message.request_id, prepared.attempt):
                    raise _AttemptTakenOver
            handed_over = True

        try:
            return transport.send(prepared.mail, point_of_no_return)
        except _AttemptTakenOver:
            return SendOutcome(OUTCOME_DEFERRED, reason="the attempt was resolved elsewhere before it was handed over")
        except psycopg.Error as exc:
            # The point of no return could not be recorded, so the message was not handed over.
            return SendOutcome(
                OUTCOME_DEFERRED, reason=f"the database could not record the attempt ({type(exc).__name__})"
            )
        except Exception as exc:
            # Whatever went wrong, the attempt is resolved now rather than left open while this process lives.
            log.exception("sending failed unexpectedly", extra={"fields": {"error": type(exc).__name__}})
            transport.close()
            if handed_over:
                return SendOutcome(UNCERTAIN, reason=f"sending failed after the hand-over ({type(exc).__name__})")
            return SendOutcome(OUTCOME_DEFERRED, reason=f"sending failed before the hand-over ({type(exc).__name__})")

    def _record_outcome(self, prepared: Prepared, outcome: SendOutcome) -> None:
        request_id, attempt = prepared.message.request_id, prepared.attempt
        result = "uncertain" if outcome.result == UNCERTAIN else outcome.result
        ATTEMPT_OUTCOMES.labels(result).inc()
        with self._pool.connection() as conn, conn.pipeline(), conn.transaction(), conn.cursor() as cur:
            message = message_store.finish_attempt(
                cur, request_id, attempt, result, outcome.smtp_code, outcome.enhanced_code
            )
            if message is None:
                log.warning(
                    "outcome arrived after the attempt was resolved elsewhere",
                    extra={"fields": {"request_id": str(request_id), "attempt": attempt, "outcome": result}},
                )
                return
            if message.status not in ("sending", "delivery_uncertain"):
                return
            if outcome.result == UNCERTAIN:
                message_store.set_status(cur, message, "delivery_uncertain", UNCERTAIN_REASON)
            elif outcome.result == OUTCOME_DEFERRED:
                self._defer(cur, message, outcome.reason, message.tries)
            else:
                message_store.set_status(cur, message, _OUTCOME_STATUS[outcome.result], outcome.reason)
                if outcome.result == SENT and message.kind == ENQUIRY:
                    _start_follow_up(cur, message, self._clock())
        log.info(
            "delivery attempt finished",
            extra={
                "fields": {
                    "request_id": str(request_id),
                    "attempt": attempt,
                    "outcome": result,
                    "smtp_code": outcome.smtp_code,
                    "enhanced_code": outcome.enhanced_code,
                }
            },
        )

    def _until_recorded(self, record: Callable[[], None]) -> None:
        """Records an outcome, retrying while the database is away: an outcome not recorded would be resolved as
        uncertain (or retried) after a restart, so it is worth waiting for, but not forever once stopping."""
        deadline: float | None = None
        while True:
            try:
                record()
                return
            except psycopg.OperationalError as exc:  # the database is away; anything else is a bug, raised
                if self._stopping.is_set():
                    deadline = deadline or time.monotonic() + 10.0
                    if time.monotonic() > deadline:
                        raise
                log.warning("could not record an outcome; retrying", extra={"fields": {"error": type(exc).__name__}})
                time.sleep(0.5)

    def _setup(
        self, conn: psycopg.Connection[Any], institution_id: str, template_name: str
    ) -> tuple[Institution | None, Template | None]:
        key = (institution_id, template_name)
        with self._setups_lock:
            cached = self._setups.get(key)
        if cached is not None and time.monotonic() - cached[1] < _SETUP_TTL_SECONDS:
            return cached[0]
        found = (
            template_store.find_institution(conn, institution_id),
            template_store.find_template(conn, institution_id, template_name),
        )
        with self._setups_lock:
            self._setups[key] = (found, time.monotonic())
        return found


class _RenderRejected(Exception):
    """The message cannot be rendered as it stands; retrying would not change that."""


class _AttemptTakenOver(Exception):
    """Another process resolved this attempt (taking this one for dead) before it was handed over."""


def _start_follow_up(cur: psycopg.Cursor[Any], message: Message, sent_at: datetime) -> None:
    cur.execute(
        "INSERT INTO follow_ups (request_id, institution_id, student_pseudonym, case_id, sender_person_id, sent_at)"
        " VALUES (%s, %s, %s, %s, %s, %s) ON CONFLICT (request_id) DO NOTHING",
        (
            message.request_id,
            message.institution_id,
            message.student_pseudonym,
            message.case_id,
            message.sender_person_id,
            sent_at,
        ),
    )
