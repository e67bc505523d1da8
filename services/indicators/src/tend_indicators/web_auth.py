"""Authenticating the systems that send data: HTTP Basic, the user name a source's name and the password its key
(as xAPI learning record providers and most exporters can send), compared in constant time."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping

from flask import request


class SourceKeys:
    def __init__(self, credentials: Mapping[str, str]) -> None:
        # Digests, so that comparing takes the same time whatever the lengths.
        self._digests = {name: hashlib.sha256(key.encode()).digest() for name, key in credentials.items()}
        self._decoy = hashlib.sha256(b"no such source").digest()

    def authenticate(self) -> str | None:
        """The source named by the request's credentials, if its key is right."""
        auth = request.authorization
        if auth is None or auth.type != "basic":
            return None
        given = hashlib.sha256((auth.password or "").encode()).digest()
        expected = self._digests.get(auth.username or "")
        matches = hmac.compare_digest(given, expected if expected is not None else self._decoy)
        return auth.username if matches and expected is not None else None
