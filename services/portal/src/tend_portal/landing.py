"""What the landing page shows on arrival.

Nothing personal on arrival: by default the landing page offers only actions. A person will later be able to choose
what appears there, and that preference will be stored server-side in identity (never in a browser cookie); this
module is the seam where it will be read. Until then every person gets the safe default.
"""

from __future__ import annotations

import dataclasses
import enum

from tend_portal.clients import Session


class LandingContent(enum.Enum):
    ACTIONS_ONLY = "actions_only"


@dataclasses.dataclass(frozen=True)
class LandingPreference:
    content: LandingContent = LandingContent.ACTIONS_ONLY


def landing_preference(_session: Session) -> LandingPreference:
    """The person's landing preference. Later read from identity; for now always the safe default."""
    return LandingPreference()
