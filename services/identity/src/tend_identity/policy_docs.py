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
