"""Staff authentication and authorisation, both decided by identity.

The signed assertion is verified locally with identity's public key (who is acting); identity's CheckAccess decides
whether that person may do the action on the module run (may they). Checkin keeps no rights of its own: the client
of those decisions is `tend_common.identity_access`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import grpc

from tend_common.identity_access import PERSON_KIND_CLAIM, assertion_verifier
from tend_common.tokens import TokenVerifier

AUDIENCE = "checkin"


def is_checkin_token(claims: Mapping[str, Any]) -> bool:
    """Verified claims of a student's check-in token (subject: pseudonym). Identity signs both staff assertions and
    check-in tokens for this audience; only its assertions name the person's kind."""
    subject = claims.get("sub")
    return PERSON_KIND_CLAIM not in claims and isinstance(subject, str) and bool(subject)


def checkin_token_verifier(identity_channel: grpc.Channel) -> TokenVerifier:
    """Verifies what identity signs for this service: staff assertions and students' check-in tokens."""
    return assertion_verifier(identity_channel, AUDIENCE)
