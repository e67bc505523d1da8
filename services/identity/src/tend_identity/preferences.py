"""A person's preferences, kept on the server so that a fresh browser never brings back a page with personal data.
The landing page defaults to the page of actions, which shows nothing personal."""

from __future__ import annotations

import enum
import uuid
from dataclasses import dataclass

from tend_identity.store import Connection
from tend_identity.store import preferences as preference_store


class LandingPage(enum.Enum):
    ACTIONS = "actions"
    OVERVIEW = "overview"


DEFAULT_LANDING_PAGE = LandingPage.ACTIONS


@dataclass(frozen=True)
class Preferences:
    landing_page: LandingPage = DEFAULT_LANDING_PAGE


def preferences_of(conn: Connection, person_id: uuid.UUID) -> Preferences:
    stored = preference_store.landing_page(conn, person_id)
    return Preferences(LandingPage(stored) if stored else DEFAULT_LANDING_PAGE)


def set_preferences(conn: Connection, person_id: uuid.UUID, preferences: Preferences) -> Preferences:
    preference_store.set_landing_page(conn, person_id, preferences.landing_page.value)
    return preferences
