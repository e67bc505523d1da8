"""Who is asking (their assertion, verified with identity's public key) and whether they may (identity decides).

Audit keeps no rights of its own: "who accessed person X" needs "audit.read" on that person, which identity grants the
data protection officer and the person themself; every other question needs "audit.read_all" on the whole log.
"""

from __future__ import annotations

import grpc

from tend_common import identity_access
from tend_common.tokens import TokenVerifier

AUDIENCE = "audit"
READ_PERSON = "audit.read"
READ_ALL = "audit.read_all"


def assertion_verifier(identity_channel: grpc.Channel) -> TokenVerifier:
    """Verifies the assertions identity signs for this service."""
    return identity_access.assertion_verifier(identity_channel, AUDIENCE)
