"""Who is acting, and may they: both decided by identity.

The signed assertion is verified here with identity's public keys (who is acting); identity's CheckAccess decides
whether that person may write to the student (may they). Notify keeps no rights of its own: the client of those
decisions is `tend_common.identity_access`.
"""

from __future__ import annotations

import grpc

from tend_common import identity_access
from tend_common.tokens import TokenVerifier

AUDIENCE = "notify"
SEND_ACTION = "enquiry.send"
STUDENT = "student"


def assertion_verifier(identity_channel: grpc.Channel) -> TokenVerifier:
    """Verifies the assertions identity signs for this service."""
    return identity_access.assertion_verifier(identity_channel, AUDIENCE)
