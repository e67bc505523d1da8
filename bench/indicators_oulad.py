"""Shared by the OULAD evaluation and the indicators benchmark: a database of its own, a stand-in for identity, and
the presentation's rule settings.

The stand-in maps OULAD's id_student to a keyed pseudonym in process (identity's own OULAD import is built
separately); it keeps the reverse map only so the evaluation can compare flags with final results, which the
importer itself never reads.
"""

from __future__ import annotations

import csv
import hashlib
import hmac
import secrets
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import date
from pathlib import Path
from typing import Any

import psycopg

from tend_common.db import apply_migrations
from tend_indicators.directory import IdentifierKind, ResponsibleStaff
from tend_indicators.rules_config import RulesConfig, parse_rules_config
from tend_testing.backends import find_backends

ROOT = Path(__file__).resolve().parent.parent
OULAD = ROOT.parent / "shared" / "data" / "oulad-AAA-2013J"
# OULAD does not date presentations. AAA 2013J ("J": October) started on Saturday 5 October 2013: with that start its
# quietest day, day 81, is Christmas Day, and its weekly rhythm has the weekend where a weekend should be.
PRESENTATION_STARTS_ON = date(2013, 10, 5)
INSTITUTION = "ou"

# The Open University's calendar for this presentation: the presentation is the term, with the Christmas break.
OU_CALENDAR = {
    "terms": [{"name": "the 2013J presentation", "starts_on": "2013-10-05", "ends_on": "2014-06-30"}],
    "breaks": [{"name": "the Christmas break", "starts_on": "2013-12-21", "ends_on": "2014-01-05"}],
}


def default_rules() -> RulesConfig:
    """The default rule set, with the institution's calendar."""
    return parse_rules_config({"institutions": {INSTITUTION: {"calendar": OU_CALENDAR}}})


def naive_rules() -> RulesConfig:
    """No VLE click for 14 consecutive days, counted from the presentation's start, nothing else."""
    off = {"enabled": False}
    return parse_rules_config(
        {
            "defaults": {
                "no_engagement": {"days": 14, "sources": ["vle"], "corroborated": False},
                "low_engagement": off,
                "sudden_drop": off,
                "missed_assignment": off,
                "visa_contact_points": off,
            }
        }
    )


class StandInIdentity:
    """Maps id_student to a keyed pseudonym; names a tutor for every student."""

    def __init__(self) -> None:
        self._key = secrets.token_bytes(32)
        self.students_by_pseudonym: dict[str, str] = {}

    def map_to_pseudonyms(self, kind: IdentifierKind, identifiers: Sequence[str]) -> dict[str, str]:
        if kind is not IdentifierKind.OULAD_ID:
            return {}
        found = {}
        for identifier in identifiers:
            digest = hmac.new(self._key, identifier.encode(), hashlib.sha256).hexdigest()[:24]
            pseudonym = f"p_{digest}"
            self.students_by_pseudonym[pseudonym] = identifier
            found[identifier] = pseudonym
        return found

    def responsible_staff(self, pseudonyms: Sequence[str]) -> dict[str, list[ResponsibleStaff]]:
        return {p: [ResponsibleStaff("tutor-ou-1", "personal_tutor")] for p in pseudonyms}


@contextmanager
def scratch_database(prefix: str) -> Iterator[str]:
    """A migrated database of indicators' schema, dropped afterwards (only this one)."""
    backends, containers = find_backends()
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    admin = backends.postgres_admin_dsn
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    dsn = admin.rsplit("/", 1)[0] + f"/{name}"
    try:
        apply_migrations(dsn, "tend_indicators.migrations")
        yield dsn
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        if containers is not None:
            containers.stop()


def read_csv(name: str) -> list[dict[str, Any]]:
    with (OULAD / name).open(newline="") as handle:
        return list(csv.DictReader(handle))
