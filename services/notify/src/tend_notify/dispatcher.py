"""Sending: threads that take due messages from the database, each over its own reused SMTP connection.

A thread takes a batch of due messages. For each: hold it (quiet hours, the global rate limit) or resolve the
addresses through identity (the whole batch's at once), render and compose it; the batch's attempts are recorded
together. Then, one message at a time: hand it to the mail server and record the outcome, publishing each status
change to the case through the outbox. The schedule of retries lives in the database (`next_attempt_at`), so no
thread sleeps on a message and a restart loses nothing.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import random
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
from psycopg_pool import ConnectionPool

from tend_notify import follow_up_store, message_store, template_store
from tend_notify.composing import AddressRejected, compose
from tend_notify.contacts import (
    FOLLOW_UP,
    SUPPORTIVE_ENQUIRY,
    Contact,
    ContactDirectory,
    ContactError,
    ContactRequest,
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
# Results of the content rules kept for texts seen recently (the same template sent to many students).
_CHECKS_KEPT = 512
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
        self._checks: dict[bytes, list[str]] = {}
        self._checks_lock = threading.Lock()
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
        """Stops taking messages; each thread finishes (and records) the one in hand and takes back the rest of its
        batch."""
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
                    handled = 0
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

    def dispatch_once(self, transport: MailTransport) -> int:
        """Takes up to DISPATCH_BATCH due messages and sends, holds or fails each; how many it took (0: none due).

        The attempts of a batch are recorded together, before the first is handed over; each is then sent, and its
        outcome recorded, one after the other. Attempts not begun when the process stops are taken back."""
        taken, ready = self._prepare()
        begun = 0
        try:
            for prepared in ready:
                if self._stopping.is_set():
                    break
                begun += 1
                started = time.perf_counter()
                outcome = self._hand_over(transport, prepared)
                SEND_SECONDS.observe(time.perf_counter() - started)
                self._until_recorded(functools.partial(self._record_outcome, prepared, outcome))
        finally:
            # Stopping, or a failure with messages still to go: those not begun are due again at once, rather than
            # left to this process's attempts until it dies.
            if begun < len(ready):
                self._until_recorded(functools.partial(self._release, ready[begun:]))
        return taken

    def _prepare(self) -> tuple[int, list[Prepared]]:
        """In one transaction, with the messages locked: hold or fail each, or record the attempt about to be made.
        Returns how many messages were taken and those ready to hand over."""
        now = self._clock()
        # Not in pipeline mode: on a nearby database its bookkeeping costs more CPU than the round trips it saves.
        with self._pool.connection() as conn, conn.transaction(), conn.cursor() as cur:
            messages = message_store.lock_due(cur, now, self._settings.dispatch_batch)
            if not messages:
                return 0, []
            sendable = self._hold(cur, conn, messages, now)
            # Every address the batch needs, asked of identity at once (each distinct look-up once).
            contacts = self._contacts.look_up(
                request for message, _institution, _template in sendable for request in _contact_requests(message)
            )
            ready: list[tuple[Message, OutgoingMail]] = []
            for message, institution, template in sendable:
                try:
                    ready.append((message, self._compose(message, institution, template, contacts, now)))
                except ContactUnknown:
                    message_store.set_status(cur, message, "failed", "identity does not know the recipient")
                except ContactsUnavailable:
                    self._defer(cur, message, "identity could not be asked for the address", message.tries + 1)
                except (AddressRejected, _RenderRejected) as exc:
                    message_store.set_status(cur, message, "failed", str(exc))
            if not ready:
                return len(messages), []
            # This commit need not wait for the disk: the point of no return, recorded later and waited for, is
            # flushed with everything before it. Lost to a database crash, the attempts were never handed over.
            cur.execute("SET LOCAL synchronous_commit = off")
            attempts = message_store.start_attempts(cur, [message for message, _mail in ready], self._owner_key)
        return len(messages), [
            Prepared(message=message, mail=mail, attempt=attempt)
            for (message, mail), attempt in zip(ready, attempts, strict=True)
        ]

    def _hold(
        self, cur: psycopg.Cursor[Any], conn: psycopg.Connection[Any], messages: list[Message], now: datetime
    ) -> list[tuple[Message, Institution, Template]]:
        """The messages that may go now, with their setup; the others are failed (no setup) or held (quiet hours,
        the global rate limit, counted for the whole batch at once)."""
        candidates = []
        for message in messages:
            institution, template = self._setup(conn, message.institution_id, message.template_name)
            if institution is None or template is None:
                message_store.set_status(cur, message, "failed", "the institution or template is not configured")
                continue
            if message.kind == ENQUIRY:
                until = quiet_until(
                    now, institution.time_zone, institution.quiet_hours_start, institution.quiet_hours_end
                )
                if until is not None:
                    message_store.postpone(cur, message.request_id, until, "held until the student's quiet hours end")
                    continue
            candidates.append((message, institution, template))
        if not candidates:
            return []
        allowed, wait = self._limiter.acquire_up_to(
            "global", self._settings.global_limit_per_minute, 60, len(candidates)
        )
        for message, _institution, _template in candidates[allowed:]:
            message_store.postpone(
                cur, message.request_id, now + timedelta(seconds=wait + self._rng.uniform(0, 1)), "rate limited"
            )
        return candidates[:allowed]

    def _compose(
        self,
        message: Message,
        institution: Institution,
        template: Template,
        contacts: Mapping[ContactRequest, Contact | ContactError],
        now: datetime,
    ) -> OutgoingMail:
        rendered, recipient, from_name, reply_to = self._render(message, institution, template, contacts)
        return compose(
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

    def _render(
        self,
        message: Message,
        institution: Institution,
        template: Template,
        contacts: Mapping[ContactRequest, Contact | ContactError],
    ) -> tuple[RenderedMessage, Contact, str, str]:
        """The rendered message, its recipient, the From display name and the Reply-To address."""
        if message.subject is None or message.body is None:
            raise _RenderRejected("the message text is no longer held")
        values = institution.values()
        found = [_answer(contacts, request) for request in _contact_requests(message)]
        if message.kind == ENQUIRY:
            recipient, sender = found
            values.update(
                student_name=recipient.preferred_name, sender_name=sender.preferred_name, sender_email=sender.email
            )
            from_name, reply_to = f"{sender.preferred_name} ({institution.name})", sender.email
        else:
            [recipient] = found
            values.update(recipient_name=recipient.preferred_name, portal_url=self._settings.portal_base_url)
            from_name, reply_to = f"Tend ({institution.name})", ""
        problems = self._rule_problems(message.subject, message.body, template, institution)
        if problems:
            raise _RenderRejected("the rendered message breaks the content rules: " + "; ".join(problems))
        return render(message.subject, message.body, template.html_layout, values), recipient, from_name, reply_to

    def _rule_problems(self, subject: str, body: str, template: Template, institution: Institution) -> list[str]:
        """The rules checked on the message rendered with stand-ins for people's names and addresses (a student
        called Flagg is no breach); everything else in it (the text, the layout, the support details) is real.

        The answer depends on the text and the setup only, so it is kept for the next message with the same ones,
        under a digest: the text itself is not kept."""
        portal = self._settings.portal_base_url
        key = hashlib.blake2b(
            repr((subject, body, template.html_layout, institution, portal)).encode(), digest_size=16
        ).digest()
        with self._checks_lock:
            known = self._checks.get(key)
        if known is not None:
            return known
        problems = [
            str(p) for p in check_rendered(render_neutral(subject, body, template.html_layout, institution, portal))
        ]
        with self._checks_lock:
            if len(self._checks) >= _CHECKS_KEPT:
                self._checks.clear()
            self._checks[key] = problems
        return problems

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
        with self._pool.connection() as conn, conn.transaction(), conn.cursor() as cur:
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
                    follow_up_store.start(cur, message.request_id, self._clock())
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

    def _release(self, unbegun: list[Prepared]) -> None:
        with self._pool.connection() as conn, conn.transaction(), conn.cursor() as cur:
            for prepared in unbegun:
                message_store.release_attempt(cur, prepared.message, prepared.attempt)

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


def _contact_requests(message: Message) -> list[ContactRequest]:
    """What identity is asked for a message: an enquiry's student and sender, on behalf of the sender; a digest's
    member of staff."""
    if message.kind == ENQUIRY:
        sender = message.sender_person_id or ""
        return [
            ContactRequest(SUPPORTIVE_ENQUIRY, sender, pseudonym=message.student_pseudonym or ""),
            ContactRequest(SUPPORTIVE_ENQUIRY, sender, person_id=sender),
        ]
    return [ContactRequest(FOLLOW_UP, "", person_id=message.recipient_person_id or "")]


def _answer(contacts: Mapping[ContactRequest, Contact | ContactError], request: ContactRequest) -> Contact:
    answer = contacts.get(request)
    if answer is None:
        raise ContactsUnavailable("not asked")
    if isinstance(answer, ContactError):
        raise answer
    return answer
