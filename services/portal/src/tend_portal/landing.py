"""What the landing page shows on arrival.

Nothing personal on arrival: by default the landing page offers only actions. A person may choose their own
overview instead; that preference is kept by identity, on the server (never in a browser cookie), so a fresh
browser shows what the person chose and nothing more. If the preference cannot be read, the page falls back to the
safe default rather than guess.
"""

from __future__ import annotations

import dataclasses
import enum
import logging

from tend_portal.clients import IdentityApi
from tend_portal.grpc_calls import ServiceCallError

log = logging.getLogger(__name__)


class LandingContent(enum.Enum):
    ACTIONS_ONLY = "actions"
    OVERVIEW = "overview"


@dataclasses.dataclass(frozen=True)
class LandingPreference:
    content: LandingContent = LandingContent.ACTIONS_ONLY


def landing_preference(identity: IdentityApi, session_token: str) -> LandingPreference:
    """The person's landing preference from identity; the safe default when identity cannot say."""
    try:
        stored = identity.get_preferences(session_token)
    except ServiceCallError:
        log.info("landing preference unavailable; showing actions only")
        return LandingPreference()
    if stored.landing_page == LandingContent.OVERVIEW.value:
        return LandingPreference(LandingContent.OVERVIEW)
    return LandingPreference()
