from __future__ import annotations

import hashlib
import re
import uuid

from psycopg_pool import ConnectionPool

from services.identity.tests.kek import TEST_WRAPPING
from tend_identity import demo, pseudonyms
from tend_identity.store import keys as key_store

SECRET_A = bytes(range(32))
SECRET_B = bytes(range(1, 33))
PERSON = uuid.UUID("0b0d6a9e-5c9e-4a53-8a51-6f4f1c2b7e01")
OTHER = uuid.UUID("0b0d6a9e-5c9e-4a53-8a51-6f4f1c2b7e02")


def test_shape_is_prefixed_lower_case_base32() -> None:
    assert re.fullmatch(r"p_[a-z2-7]{52}", pseudonyms.derive_pseudonym(SECRET_A, PERSON))


def test_stable_for_one_key_and_distinct_per_person() -> None:
    assert pseudonyms.derive_pseudonym(SECRET_A, PERSON) == pseudonyms.derive_pseudonym(SECRET_A, PERSON)
    assert pseudonyms.derive_pseudonym(SECRET_A, PERSON) != pseudonyms.derive_pseudonym(SECRET_A, OTHER)


def test_not_derivable_without_the_key() -> None:
    pseudonym = pseudonyms.derive_pseudonym(SECRET_A, PERSON)

    assert pseudonym != pseudonyms.derive_pseudonym(SECRET_B, PERSON)
    assert pseudonym != pseudonyms.derive_pseudonym(b"", PERSON)
    # Not a plain hash of the id either, in any of the obvious encodings.
    for encoded in (PERSON.bytes, str(PERSON).encode(), PERSON.hex.encode()):
        assert hashlib.sha256(encoded).hexdigest()[:16] not in pseudonym
    assert PERSON.hex[:8] not in pseudonym


def test_stable_within_a_year_different_across_years_and_recorded(demo_pool: ConnectionPool) -> None:
    person_id = demo.demo_id("person", "student001")
    with demo_pool.connection() as conn:
        first = pseudonyms.pseudonym_of(conn, TEST_WRAPPING, person_id, "2026/27")
        again = pseudonyms.pseudonym_of(conn, TEST_WRAPPING, person_id, "2026/27")
        next_year = pseudonyms.pseudonym_of(conn, TEST_WRAPPING, person_id, "2027/28")
        other_student = pseudonyms.pseudonym_of(conn, TEST_WRAPPING, demo.demo_id("person", "student002"), "2026/27")

        assert first == again
        assert next_year != first
        assert other_student != first
        assert key_store.person_of_pseudonym(conn, first) == person_id
        assert key_store.person_of_pseudonym(conn, next_year) == person_id
        rows = conn.execute("SELECT academic_year FROM pseudonym_keys ORDER BY academic_year").fetchall()
        assert rows == [("2026/27",), ("2027/28",)]
        mappings = conn.execute("SELECT count(*) FROM pseudonyms WHERE person_id = %s", (person_id,)).fetchone()
        assert mappings == (2,)
