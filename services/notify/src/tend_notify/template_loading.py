"""`tend-notify load-templates FILE`: an institution's own sender details and templates, from a JSON file.

The file is checked whole before anything is stored: every problem is reported with where it is, and a file with any
problem changes nothing. Loading the same file again changes nothing either.

    {"institutions": [{
        "id": "uon", "name": "the University of Nottingham", "from_address": "tend@nottingham.ac.uk",
        "support_name": "Student Services", "support_url": "https://www.nottingham.ac.uk/studentservices",
        "time_zone": "Europe/London", "quiet_hours": {"start": "21:00", "end": "08:00"},
        "templates": [{"name": "supportive_enquiry", "kind": "enquiry", "subject": "...", "body": "...",
                       "html_layout": "<html>...{content}...</html>"}]
    }]}
"""

from __future__ import annotations

import json
import re
import zoneinfo
from dataclasses import dataclass
from datetime import time
from pathlib import Path
from typing import Any

import psycopg

from tend_notify import template_store
from tend_notify.composing import domain_of
from tend_notify.templates import KINDS, Institution, Template, check_template

_IDENTIFIER = re.compile(r"[a-z0-9][a-z0-9_-]{0,63}")
_INSTITUTION_FIELDS = ("id", "name", "from_address", "support_name", "support_url", "time_zone", "quiet_hours")
_TEMPLATE_FIELDS = ("name", "kind", "subject", "body", "html_layout")


class TemplatesRejected(ValueError):
    """The file has problems; `problems` lists each with where it is."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems


@dataclass(frozen=True)
class Loaded:
    institutions: list[Institution]
    templates: list[Template]


def _text(entry: dict[str, Any], field: str, where: str, problems: list[str]) -> str:
    value = entry.get(field)
    if not isinstance(value, str) or not value.strip():
        problems.append(f"{where}.{field}: a non-empty text is required")
        return ""
    return value


def _time(value: object, where: str, problems: list[str]) -> time:
    try:
        return time.fromisoformat(str(value))
    except ValueError:
        problems.append(f"{where}: {value!r} is not a time such as 21:00")
        return time(0)


def _institution(entry: dict[str, Any], where: str, allowed: tuple[str, ...], problems: list[str]) -> Institution:
    unknown = sorted(set(entry) - {*_INSTITUTION_FIELDS, "templates"})
    if unknown:
        problems.append(f"{where}: unknown fields {', '.join(unknown)}")
    ident = _text(entry, "id", where, problems)
    if ident and not _IDENTIFIER.fullmatch(ident):
        problems.append(f"{where}.id: lower-case letters, digits, _ and - only")
    from_address = _text(entry, "from_address", where, problems)
    if from_address and domain_of(from_address) not in {d.lower() for d in allowed}:
        problems.append(f"{where}.from_address: its domain is not in TEND_NOTIFY_ALLOWED_SENDER_DOMAINS")
    support_url = _text(entry, "support_url", where, problems)
    if support_url and not support_url.startswith("https://"):
        problems.append(f"{where}.support_url: must be an https:// address")
    zone = _text(entry, "time_zone", where, problems)
    try:
        zoneinfo.ZoneInfo(zone)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        problems.append(f"{where}.time_zone: {zone!r} is not a known time zone")
    quiet = entry.get("quiet_hours")
    if not isinstance(quiet, dict):
        problems.append(f'{where}.quiet_hours: required, as {{"start": "21:00", "end": "08:00"}}')
        quiet = {}
    return Institution(
        id=ident,
        name=_text(entry, "name", where, problems),
        from_address=from_address,
        support_name=_text(entry, "support_name", where, problems),
        support_url=support_url,
        time_zone=zone,
        quiet_hours_start=_time(quiet.get("start", "00:00"), f"{where}.quiet_hours.start", problems),
        quiet_hours_end=_time(quiet.get("end", "00:00"), f"{where}.quiet_hours.end", problems),
    )


def parse(document: object, allowed_sender_domains: tuple[str, ...]) -> Loaded:
    """The institutions and templates of a document; TemplatesRejected with every problem otherwise."""
    problems: list[str] = []
    if not isinstance(document, dict) or not isinstance(document.get("institutions"), list):
        raise TemplatesRejected(['the file must be an object with a list "institutions"'])
    institutions, templates = [], []
    for i, entry in enumerate(document["institutions"]):
        where = f"institutions[{i}]"
        if not isinstance(entry, dict):
            problems.append(f"{where}: must be an object")
            continue
        institution = _institution(entry, where, allowed_sender_domains, problems)
        institutions.append(institution)
        entries = entry.get("templates", [])
        if not isinstance(entries, list):
            problems.append(f"{where}.templates: must be a list")
            continue
        for j, item in enumerate(entries):
            template_where = f"{where}.templates[{j}]"
            if not isinstance(item, dict):
                problems.append(f"{template_where}: must be an object")
                continue
            unknown = sorted(set(item) - set(_TEMPLATE_FIELDS))
            if unknown:
                problems.append(f"{template_where}: unknown fields {', '.join(unknown)}")
            values = [_text(item, field, template_where, problems) for field in _TEMPLATE_FIELDS]
            template = Template(institution.id, *values)
            if template.kind and template.kind not in KINDS:
                problems.append(f"{template_where}.kind: must be one of {', '.join(KINDS)}")
            elif all(values):
                problems.extend(f"{template_where}: {p}" for p in check_template(template))
            templates.append(template)
    if problems:
        raise TemplatesRejected(problems)
    return Loaded(institutions, templates)


def load_file(dsn: str, path: Path, allowed_sender_domains: tuple[str, ...]) -> Loaded:
    """Checks the file, then stores all of it in one transaction."""
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise TemplatesRejected([f"{path}: cannot be read as JSON ({exc})"]) from None
    loaded = parse(document, allowed_sender_domains)
    with psycopg.connect(dsn) as conn, conn.transaction(), conn.cursor() as cur:
        for institution in loaded.institutions:
            template_store.save_institution(cur, institution)
        for template in loaded.templates:
            template_store.save_template(cur, template)
    return loaded
