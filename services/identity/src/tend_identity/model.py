"""The domain's value types, shared by the domain modules, the data access and the gRPC layer."""

from __future__ import annotations

import enum
import uuid
from dataclasses import dataclass
from datetime import datetime


class PersonKind(enum.StrEnum):
    STUDENT = "student"
    STAFF = "staff"


@dataclass(frozen=True)
class Person:
    """A person as sign-in and access decisions see them: an id, a kind, a name to greet them by, and roles."""

    id: uuid.UUID
    kind: PersonKind
    display_name: str
    roles: tuple[str, ...]


@dataclass(frozen=True)
class Actor:
    """Who is acting, as a verified assertion states it."""

    person_id: uuid.UUID
    kind: PersonKind


@dataclass(frozen=True)
class Resource:
    """What an action is aimed at: a kind ("module_run", "student", ...) and an opaque id."""

    kind: str
    id: str


@dataclass(frozen=True)
class Decision:
    """An access decision, with a plain-language reason safe to show the asker and the rule that decided."""

    allowed: bool
    reason: str
    rule: str


@dataclass(frozen=True)
class ModuleRunSummary:
    id: uuid.UUID
    module_code: str
    title: str
    academic_year: str
    term: str


@dataclass(frozen=True)
class IssuedToken:
    """A signed compact JWS and when it stops being valid."""

    token: str
    expires_at: datetime


class Refused(Exception):
    """A request refused after its audit record was written: the caller commits, then reports the refusal. The
    message is plain language, safe to show to the person who asked."""


class NotFoundError(Refused):
    """What the request names does not exist (or is not what it must be)."""
