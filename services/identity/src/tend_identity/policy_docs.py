"""The access policy rendered for people: its tables, and the access matrix every relationship gets against every
action, computed from the policy alone. docs/access-policy.md is this module's output (`tend-identity policy-docs`);
the access-matrix test asserts the running service answers every cell as printed.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from tend_identity import policy
from tend_identity.policy import Detail, Purpose

ALLOWED = "allowed"
DENIED = "denied"
NOT_APPLICABLE = "n/a"
INDIVIDUAL = "individual"
AGGREGATE = "aggregate"
SUPPRESSED = "suppressed"
NONE = "none"


@dataclass(frozen=True)
class Column:
    """One question asked of every relationship: an action (or a list for a purpose) on a resource of a kind,
    inside or outside the relationship."""

    key: str
    heading: str
    # "action": CheckAccess; "student_view": CheckAccess student.view for `purpose`; "list": ListVisibleStudents for
    # `purpose` over the whole scope; "small_cohort": the same, narrowed to a module run of fewer students than the
    # minimum cohort.
    kind: str
    action: str = ""
    resource_kind: str = ""
    purpose: Purpose | None = None
    inside: bool = True


# Calls other than CheckAccess that are decided by the action rules above (the design, kept with the tables).
RULES_IN_OTHER_CALLS_SECTION = """## Calls decided by these rules

- **FindPerson** (the data protection officer's audit search, through the portal only): which person a student
  number, else a staff number, else a member of staff's user name (for staff imported without a staff number),
  names. Allowed as `audit.read` on the person found (the data protection officer; a person about themself).
  Whether a number names anybody at all is itself only for `audit.read_all` (the data protection officer); anyone
  else gets the same refusal for a known and an unknown number. Each look-up is recorded (`person.find`, allowed or
  refused, naming the person found, never the number typed) in the transaction that answers it; if the record
  cannot be made, nothing is answered. It returns the person id and display name only.
- **ListModules** (module-management pages): the modules on which the `module.*` rules allow the person something,
  with exactly those actions: a school's administrators get every module of their school (withdrawn ones too, with
  `module.restore` instead of `module.delete`), a module's leads get `module.update` on the modules they lead while
  they are not withdrawn; and the schools where `module.create` allows them to add modules. The list is read with
  the same relationships a decision uses, and a test asserts it against CheckAccess for every module. Every change
  is still decided and recorded when it is made.

The portal's `/modules` page (the "Modules" link shows for school administrators and lecturers) lists what
ListModules returns, with a form or button only for the actions it allows: change the title, withdraw, restore,
and create a module in a school. Each is a POST with the CSRF token, decided again by identity; a refusal is a plain
"You can't change this module" page, and nothing is changed.
"""

# How CheckAccess decides and records (not generated from the policy: the design, kept with the page it explains).
DECISIONS_SECTION = """## How a decision is made and recorded

A CheckAccess call goes: validate the request; check the calling service's credential (verified once, then cached
until it expires); verify the person's assertion (verified once, then cached by digest until it expires); decide
from the organisation facts (below); commit the decision's audit record; answer. The decision is made on the
person's rights, never the calling service's.

**An assertion is accepted only from the service it was issued for.** Identity signs a person's assertions per
audience (GetSession `audiences`); every method that takes an `actor_assertion` requires its `aud` to be the name of
the calling service (from its verified service credential), or `identity` when the caller is the portal, which asks
identity directly for the person at the browser. So indicators may present only `indicators` assertions, checkin only
`checkin`. Another audience is a replay: UNAUTHENTICATED ("the assertion was issued for indicators; checkin must
present one issued for checkin"), recorded as a refused `service_call` of the calling service on the method, with
the reason as the purpose. The check runs on every call, cached assertion or not. With service authentication off
(no trusted services: single-service development only) there is no caller to bind to and any audience is accepted.

**Every decision, allowed or refused, is answered only after its audit record is committed.** Of the two designs
considered, group commit for every decision was chosen over answering allowed decisions at once and recording them
afterwards. An allowed answer is what lets a service go on to show a student's data: recorded afterwards, a crash
between the answer and the record would leave an access with no trail, and "no audit record, no decision" would hold
for refusals only. One rule for both outcomes is also one rule to test. With group commit the wait is one commit
shared by every decision made at that moment (under a millisecond here on a quiet machine), so answering early would
have bought little.

- Group commit (`audit_writer.py`): a decision finding no commit under way commits its record itself, with every
  record queued by then, as one INSERT into the outbox on the writer's own connection; decisions arriving meanwhile
  queue and the first to find the commit finished commits the queue. Alone, a decision pays one INSERT in its own
  thread; under load one INSERT serves many decisions and their WAL flushes are shared.
- A record that fails, or is not committed within `TEND_IDENTITY_AUDIT_WAIT_SECONDS` (default 5; the INSERT is
  cancelled after as long), fails the call with UNAVAILABLE ("the decision could not be recorded; ask again"): never
  an answer without its record. A late record may still be committed, so the trail may hold a decision nobody
  heard, never the reverse.
- The outbox relay is woken at most every 50 ms instead of by each commit (each wake costs it a transaction); it
  publishes the committed records that much later.
- Decisions that go with a change (module management, break-glass requests) are recorded in the change's own
  transaction, as before; so are reads of personal data (ResolvePseudonyms, GetContactDetails, ListVisibleStudents),
  which are recorded before the data is returned and fail if the record cannot be made.

**Organisation facts are cached** (`facts_cache.py`), since the same people ask about the same resources again and
again: the relationships a person holds to a resource, a person's unexpired break-glass grants (checked against the
clock on every decision, so a grant ends when it expires), and which person a known pseudonym names.

- Triggers on every table a decision reads (migration `0003_facts_changed.sql`) notify on commit, whoever commits:
  the importer, another identity process. Each identity process listens and drops its whole cache on every
  notification. Its own changes (break-glass, modules) drop its cache before the call that made them is answered.
- A value read while a notification arrives is not kept. While the listening connection is down nothing is served
  from the cache and every decision reads the database; the cache is emptied when listening resumes. Every entry
  is also dropped after 60 seconds, whatever happens.
- So a change made elsewhere takes effect once its notification reaches the process, normally well under a
  millisecond after its commit, not at the instant of the commit. (An assertion, for comparison, stays valid for
  five minutes after its person signs out.)

The debug log line of a decision is not even built unless debug logging is on. Measure with
`make bench` (`identity.decisions_per_s`, `identity.decision_p99_ms`); the metrics
`tend_identity_audit_batch_records` and `tend_identity_facts_cache_total` show the batching and the cache at work.

Measured on this 2-core machine when quiet (identity, PostgreSQL, RabbitMQ and the load generator sharing it;
3 runs, medians): about 1,570 decisions/s in a closed loop, 0.6 ms of identity's CPU per decision, p99 5.4 ms at
200/s and 29 ms at 1,000/s (runs from 8 to 100 ms). The target, p99 under 5 ms at 1,000/s, is not met: a trivial
call through Python's gRPC server already costs about 0.2 ms of CPU, and at 1,000/s identity needs more than half
a core while the load generator and PostgreSQL take the rest.
"""


def _has_outside(relationship: policy.Relationship, resource_kind: str) -> bool:
    """Whether any resource of the kind lies outside the relationship (some relationships reach every one)."""
    if resource_kind == "audit_log":
        return False
    if resource_kind == "student":
        return not relationship.reaches_every_student
    if resource_kind == "person":
        return relationship.name != "data_protection_officer"
    return True


def columns() -> list[Column]:
    found: list[Column] = []
    for rule in policy.ACTIONS:
        for inside in (True, False):
            side = "in" if inside else "out"
            found.append(
                Column(
                    f"{rule.name}:{side}", f"{rule.action} ({rule.resource_kind}, {side})", "action",
                    rule.action, rule.resource_kind, inside=inside,
                )
            )  # fmt: skip
    for purpose in Purpose:
        for inside in (True, False):
            side = "in" if inside else "out"
            found.append(
                Column(
                    f"student.view:{purpose.name}:{side}", f"student.view for {purpose.value} ({side})",
                    "student_view", policy.STUDENT_VIEW, "student", purpose, inside,
                )
            )  # fmt: skip
    for purpose in Purpose:
        found.append(Column(f"list:{purpose.name}", f"list for {purpose.value}", "list", purpose=purpose))
    found.append(
        Column(
            "list:COHORT_PATTERNS:small", "cohort patterns, cohort below the minimum", "small_cohort",
            purpose=Purpose.COHORT_PATTERNS,
        )
    )  # fmt: skip
    return found


def _best_detail(relationship: str, purpose: Purpose) -> Detail:
    return policy.detail_for(relationship, purpose)


def expected(relationship: policy.Relationship, column: Column) -> str:
    """What the policy says for one cell: allowed or denied for an action; the level of detail for a list."""
    if column.kind == "action":
        if not column.inside and not _has_outside(relationship, column.resource_kind):
            return NOT_APPLICABLE
        rules = policy.action_rules(column.action, column.resource_kind)
        granted = any(relationship.name in rule.relationships for rule in rules)
        return ALLOWED if granted and column.inside else DENIED
    assert column.purpose is not None
    detail = _best_detail(relationship.name, column.purpose)
    if column.kind == "student_view":
        if not column.inside and not _has_outside(relationship, "student"):
            return NOT_APPLICABLE
        return ALLOWED if detail is Detail.INDIVIDUAL and column.inside else DENIED
    if column.kind == "list":
        return {Detail.INDIVIDUAL: INDIVIDUAL, Detail.AGGREGATE: AGGREGATE, Detail.NONE: NONE}[detail]
    return {Detail.INDIVIDUAL: INDIVIDUAL, Detail.AGGREGATE: SUPPRESSED, Detail.NONE: NONE}[detail]


def matrix() -> Iterator[tuple[policy.Relationship, Column, str]]:
    for relationship in policy.RELATIONSHIPS:
        for column in columns():
            yield relationship, column, expected(relationship, column)


def _table(headings: list[str], rows: list[list[str]]) -> list[str]:
    return [
        "| " + " | ".join(headings) + " |",
        "| " + " | ".join("---" for _ in headings) + " |",
        *("| " + " | ".join(row) + " |" for row in rows),
    ]


def render() -> str:
    """docs/access-policy.md."""
    lines = [
        "# Access policy",
        "",
        "Generated from `services/identity/src/tend_identity/policy.py` by `tend-identity policy-docs`; a test fails",
        "when this file and the policy disagree, and the access-matrix test asserts every cell below against the",
        "running service. Deny by default: whatever is not granted here is refused.",
        "",
        "## Relationships and their scope",
        "",
        *_table(
            ["relationship", "held as", "students it reaches"],
            [[f"`{r.name}`", r.held_as, r.scope] for r in policy.RELATIONSHIPS],
        ),
        "",
        "## Students' data: level of detail per purpose",
        "",
        f"Aggregates are anonymised and suppressed below {policy.DEFAULT_MINIMUM_COHORT} students (the default of",
        "`TEND_IDENTITY_MINIMUM_COHORT_SIZE`). A purpose not listed for a relationship gives nothing.",
        "",
        *_table(
            ["relationship", *(purpose.value for purpose in Purpose)],
            [
                [f"`{r.name}`", *(_detail_word(policy.detail_for(r.name, p)) for p in Purpose)]
                for r in policy.RELATIONSHIPS
            ],
        ),
        "",
        "## Actions",
        "",
        *_table(["action", "on", "allowed to whoever holds", "rule"], _action_rows()),
        "",
        "## Access matrix",
        "",
        "Every relationship against every action, on a resource inside its relationship (in) and outside it (out;",
        "n/a where the relationship reaches every such resource). For lists: the level of detail over the whole",
        "scope, and for cohort patterns narrowed to a cohort below the minimum size.",
        "",
    ]
    cols = columns()
    for start in range(0, len(cols), 8):
        chunk = cols[start : start + 8]
        lines += _table(
            ["relationship", *(column.heading for column in chunk)],
            [[f"`{r.name}`", *(expected(r, column) for column in chunk)] for r in policy.RELATIONSHIPS],
        )
        lines.append("")
    lines.append(RULES_IN_OTHER_CALLS_SECTION)
    lines.append(DECISIONS_SECTION)
    return "\n".join(lines)


def _action_rows() -> list[list[str]]:
    rows = [
        [
            f"`{rule.action}`",
            rule.resource_kind,
            ", ".join(f"`{name}`" for name in sorted(rule.relationships)),
            f"`{rule.name}`",
        ]
        for rule in policy.ACTIONS
    ]
    rows.append(
        [
            "`student.view`",
            "student",
            "a relationship giving individual detail for the purpose asked",
            "`student.view.<relationship>`",
        ]
    )
    return rows


def _detail_word(detail: Detail) -> str:
    return {Detail.INDIVIDUAL: "individual", Detail.AGGREGATE: "aggregate", Detail.NONE: "—"}[detail]
