"""The key-encryption key identity's tests wrap stored secrets with, as in production: one per test process."""

from __future__ import annotations

import secrets

from tend_identity.secret_wrapping import SecretWrapping

TEST_WRAPPING = SecretWrapping(secrets.token_bytes(32))
