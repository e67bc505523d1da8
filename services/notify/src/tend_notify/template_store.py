"""Data access for institutions and their templates."""

from __future__ import annotations

from typing import Any

import psycopg

from tend_notify.templates import Institution, Template

_INSTITUTION_COLUMNS = (
    "id, name, from_address, support_name, support_url, time_zone, quiet_hours_start, quiet_hours_end"
)


def find_institution(conn: psycopg.Connection[Any], institution_id: str) -> Institution | None:
    row = conn.execute(f"SELECT {_INSTITUTION_COLUMNS} FROM institutions WHERE id = %s", (institution_id,)).fetchone()
    return Institution(*row) if row else None


def find_template(conn: psycopg.Connection[Any], institution_id: str, name: str) -> Template | None:
    row = conn.execute(
        "SELECT institution_id, name, kind, subject, body, html_layout FROM templates"
        " WHERE institution_id = %s AND name = %s",
        (institution_id, name),
    ).fetchone()
    return Template(*row) if row else None


def save_institution(cursor: psycopg.Cursor[Any], institution: Institution) -> None:
    cursor.execute(
        f"INSERT INTO institutions ({_INSTITUTION_COLUMNS}) VALUES (%s, %s, %s, %s, %s, %s, %s, %s)"
        " ON CONFLICT (id) DO UPDATE SET name = EXCLUDED.name, from_address = EXCLUDED.from_address,"
        " support_name = EXCLUDED.support_name, support_url = EXCLUDED.support_url, time_zone = EXCLUDED.time_zone,"
        " quiet_hours_start = EXCLUDED.quiet_hours_start, quiet_hours_end = EXCLUDED.quiet_hours_end,"
        " updated_at = now()",
        (
            institution.id,
            institution.name,
            institution.from_address,
            institution.support_name,
            institution.support_url,
            institution.time_zone,
            institution.quiet_hours_start,
            institution.quiet_hours_end,
        ),
    )


def save_template(cursor: psycopg.Cursor[Any], template: Template) -> None:
    cursor.execute(
        "INSERT INTO templates (institution_id, name, kind, subject, body, html_layout) VALUES (%s, %s, %s, %s, %s, %s)"
        " ON CONFLICT (institution_id, name) DO UPDATE SET kind = EXCLUDED.kind, subject = EXCLUDED.subject,"
        " body = EXCLUDED.body, html_layout = EXCLUDED.html_layout, updated_at = now()",
        (template.institution_id, template.name, template.kind, template.subject, template.body, template.html_layout),
    )
