"""Who is responsible for a student, in the order a case is routed: the personal tutor first, then the escalation
contacts the policy documents name (level tutor, programme lead, director of school, student services, support and
wellbeing, and, for a sponsored student, the visa and immigration team)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from tend_identity.store import Connection
from tend_identity.store import keys as key_store


class UnknownPseudonym(Exception):
    """No student has this pseudonym."""


@dataclass(frozen=True)
class Responsible:
    person_id: uuid.UUID
    relationship: str


_ROUTING_SQL = """
WITH student AS (
    SELECT p.id, p.programme_id, p.level, p.sponsored_visa, pg.school_id
    FROM people p LEFT JOIN programmes pg ON pg.id = p.programme_id
    WHERE p.id = %(student)s AND p.kind = 'student'
)
SELECT person_id, relationship FROM (
    SELECT 1 AS rank, r.person_id, 'personal_tutor' AS relationship, r.created_at AS since
    FROM relationships r, student s WHERE r.relation = 'personal_tutor_of' AND r.student_id = s.id
    UNION ALL
    SELECT 2, lt.person_id, 'level_tutor', lt.created_at
    FROM level_tutors lt, student s WHERE lt.programme_id = s.programme_id AND lt.level = s.level
    UNION ALL
    SELECT 3, ra.person_id, 'programme_lead', ra.created_at
    FROM role_assignments ra, student s
    WHERE ra.role = 'programme_lead' AND ra.scope_kind = 'programme' AND ra.scope_id = s.programme_id
    UNION ALL
    SELECT 4, ra.person_id, 'director_of_school', ra.created_at
    FROM role_assignments ra, student s
    WHERE ra.role = 'director_of_school' AND ra.scope_kind = 'school' AND ra.scope_id = s.school_id
    UNION ALL
    SELECT 5, ra.person_id, ra.role, ra.created_at
    FROM role_assignments ra, student s
    WHERE ra.role IN ('student_services', 'support_and_wellbeing') AND ra.scope_kind = 'institution'
    UNION ALL
    SELECT 6, ra.person_id, ra.role, ra.created_at
    FROM role_assignments ra, student s
    WHERE ra.role = 'visa_immigration' AND ra.scope_kind = 'institution' AND s.sponsored_visa
) routed
ORDER BY rank, relationship, since, person_id
"""


def responsible_staff(conn: Connection, pseudonym: str) -> list[Responsible]:
    student_id = key_store.person_of_pseudonym(conn, pseudonym)
    if student_id is None:
        raise UnknownPseudonym
    seen: set[uuid.UUID] = set()
    routed: list[Responsible] = []
    for person_id, relationship in conn.execute(_ROUTING_SQL, {"student": student_id}).fetchall():
        if person_id not in seen:
            seen.add(person_id)
            routed.append(Responsible(person_id, relationship))
    return routed
