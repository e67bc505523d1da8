"""The portal's collaborators for one app: its settings and the clients of the services it calls."""

from __future__ import annotations

import dataclasses

from flask import Flask, current_app

from tend_portal.audit_client import AuditApi
from tend_portal.clients import CheckinApi, IdentityApi
from tend_portal.corrections_client import CorrectionsApi
from tend_portal.identity_admin_client import IdentityAdminApi
from tend_portal.indicators_client import IndicatorsApi
from tend_portal.notify_client import NotifyApi
from tend_portal.settings import Settings
from tend_portal.student_directory import StudentDirectory
from tend_portal.timetable_client import TimetableApi

_EXTENSION_KEY = "tend_portal"


@dataclasses.dataclass(frozen=True)
class Portal:
    settings: Settings
    identity: IdentityApi
    checkin: CheckinApi
    # Identity's sign-in by OpenID Connect, sign-out everywhere, break-glass and module management.
    identity_admin: IdentityAdminApi
    audit: AuditApi
    timetable: TimetableApi
    # Cases, engagement summaries and cohort patterns; supportive e-mails; students' names for the person asking.
    indicators: IndicatorsApi
    notify: NotifyApi
    students: StudentDirectory
    # Class lists, a module run's sessions and recorded corrections, for the attendance correction pages.
    corrections: CorrectionsApi


def install(app: Flask, portal: Portal) -> None:
    app.extensions[_EXTENSION_KEY] = portal


def portal() -> Portal:
    """The collaborators of the app handling the current request."""
    found: Portal = current_app.extensions[_EXTENSION_KEY]
    return found
