"""The person's preferences page: what the home page shows after sign-in, stored by identity on the server."""

from __future__ import annotations

from flask import Blueprint, make_response, redirect, render_template, request, url_for
from werkzeug.wrappers import Response

from tend_portal.auth import require_session
from tend_portal.clients import Preferences
from tend_portal.context import portal
from tend_portal.landing import LandingContent, landing_preference

blueprint = Blueprint("preferences", __name__)

_CHOICES = {content.value for content in LandingContent}


@blueprint.get("/preferences")
def show() -> Response:
    current = require_session()
    preference = landing_preference(portal().identity, current.token)
    saved = request.args.get("saved") == "1"
    return make_response(render_template("preferences.html", chosen=preference.content.value, saved=saved))


@blueprint.post("/preferences")
def save() -> Response:
    current = require_session()
    chosen = request.form.get("landing_page", "")
    if chosen not in _CHOICES:
        body = render_template(
            "preferences.html",
            chosen=landing_preference(portal().identity, current.token).content.value,
            error="Choose one of the two home pages.",
        )
        return make_response(body, 400)
    portal().identity.set_preferences(current.token, Preferences(landing_page=chosen))
    return redirect(url_for("preferences.show") + "?saved=1", 303)
