"""Signing with identity's keys and verifying with tend_common.tokens.TokenVerifier, as other services do."""

from __future__ import annotations

import base64
import json
import threading
import time
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from typing import Any

import pytest
from psycopg_pool import ConnectionPool

from services.identity.tests.kek import TEST_WRAPPING
from tend_common.tokens import ISSUER, InvalidToken, TokenVerifier
from tend_identity.signing import Keyring, SigningKey, sign

KEY = SigningKey.generate()


def _claims(**overrides: Any) -> dict[str, Any]:
    now = int(time.time())
    return {"iss": ISSUER, "sub": "p_example", "aud": "checkin", "iat": now, "exp": now + 300, **overrides}


def _verifier(*keys: SigningKey, audience: str = "checkin") -> TokenVerifier:
    published: Mapping[str, bytes] = {key.kid: key.public_bytes for key in keys}
    return TokenVerifier(lambda: published, audience=audience, leeway_seconds=0)


def test_a_signed_token_verifies() -> None:
    token = sign(KEY, _claims())

    assert _verifier(KEY).verify(token)["sub"] == "p_example"


def test_the_header_names_the_algorithm_and_key() -> None:
    header = json.loads(base64.urlsafe_b64decode(sign(KEY, _claims()).split(".")[0] + "=="))

    assert header == {"alg": "EdDSA", "kid": KEY.kid, "typ": "JWT"}
    assert len(KEY.public_bytes) == 32


def test_wrong_audience_is_rejected() -> None:
    with pytest.raises(InvalidToken):
        _verifier(KEY, audience="indicators").verify(sign(KEY, _claims()))


def test_expired_is_rejected() -> None:
    past = int(time.time()) - 1000
    with pytest.raises(InvalidToken):
        _verifier(KEY).verify(sign(KEY, _claims(iat=past, exp=past + 300)))


def test_wrong_issuer_is_rejected() -> None:
    with pytest.raises(InvalidToken):
        _verifier(KEY).verify(sign(KEY, _claims(iss="someone-else")))


def test_unknown_key_is_rejected() -> None:
    stranger = SigningKey.generate()
    with pytest.raises(InvalidToken):
        _verifier(KEY).verify(sign(stranger, _claims()))


def test_a_stranger_claiming_our_key_id_is_rejected() -> None:
    impostor = SigningKey(KEY.kid, SigningKey.generate().private_key)
    with pytest.raises(InvalidToken):
        _verifier(KEY).verify(sign(impostor, _claims()))


def test_tampered_claims_are_rejected() -> None:
    header, _payload, signature = sign(KEY, _claims()).split(".")
    forged = base64.urlsafe_b64encode(json.dumps(_claims(sub="p_someone_else")).encode()).decode().rstrip("=")
    with pytest.raises(InvalidToken):
        _verifier(KEY).verify(f"{header}.{forged}.{signature}")


def test_a_tampered_signature_is_rejected() -> None:
    token = sign(KEY, _claims())
    flipped = token[:-2] + ("A" if token[-2] != "A" else "B") + token[-1]
    with pytest.raises(InvalidToken):
        _verifier(KEY).verify(flipped)


def test_the_keyring_creates_one_current_key_and_keeps_it(pool: ConnectionPool) -> None:
    first = Keyring(pool, retired_kept=timedelta(hours=1), wrapping=TEST_WRAPPING).current()
    second = Keyring(pool, retired_kept=timedelta(hours=1), wrapping=TEST_WRAPPING).current()

    assert first.kid == second.kid
    assert first.public_bytes == second.public_bytes


def test_a_rotated_key_stays_published_until_its_tokens_have_expired(pool: ConnectionPool) -> None:
    keyring = Keyring(pool, retired_kept=timedelta(hours=1), wrapping=TEST_WRAPPING)
    old = keyring.current()
    old_token = keyring.sign(_claims())
    new = keyring.rotate()

    published = keyring.published()
    assert [key.kid for key in published] == [new.kid, old.kid]
    assert keyring.sign(_claims()).count(".") == 2
    verifier = TokenVerifier(lambda: {key.kid: key.public_key for key in published}, audience="checkin")
    assert verifier.verify(old_token)["sub"] == "p_example"

    with pool.connection() as conn:
        conn.execute("UPDATE signing_keys SET retired_at = now() - interval '2 hours' WHERE kid = %s", (old.kid,))
    assert [key.kid for key in keyring.published()] == [new.kid]


def test_the_keyring_finds_verification_keys_by_id(pool: ConnectionPool) -> None:
    keyring = Keyring(pool, retired_kept=timedelta(hours=1), wrapping=TEST_WRAPPING, miss_refresh_seconds=0)
    current = keyring.current()

    found = keyring.verification_key(current.kid)
    assert found is not None
    assert found.public_bytes_raw() == current.public_bytes
    assert keyring.verification_key("no-such-key") is None


def test_a_key_id_first_seen_by_many_calls_at_once_is_found_by_all(pool: ConnectionPool) -> None:
    signer = Keyring(pool, retired_kept=timedelta(hours=1), wrapping=TEST_WRAPPING)
    kid = signer.current().kid
    verifier = Keyring(
        pool, retired_kept=timedelta(hours=1), wrapping=TEST_WRAPPING
    )  # another process: nothing read yet
    start = threading.Barrier(16)

    def look_up(_: int) -> bool:
        start.wait()
        return verifier.verification_key(kid) is not None

    with ThreadPoolExecutor(max_workers=16) as callers:
        found = list(callers.map(look_up, range(16)))

    assert found == [True] * 16
