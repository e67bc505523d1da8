"""Module management for school administrators and module leads: the modules identity says the person may manage,
creating one (administrators), changing a title (leads and administrators), withdrawing and restoring (administrators).

Identity decides and records every change; the page offers only the actions ListModules says the policy allows, but
that is a convenience: each POST is decided again by identity, and a refusal is shown as a plain refusal page.
Every change is a POST with the CSRF token, answered with a redirect back to the list.
"""

from __future__ import annotations

import logging
import re
import uuid

from flask import Blueprint, flash, g, get_flashed_messages, make_response, redirect, render_template, request, url_for
from werkzeug.wrappers import Response

from tend_portal.auth import CurrentSession, require_staff
from tend_portal.clients import IDENTITY_AUDIENCE
from tend_portal.context import portal
from tend_portal.grpc_calls import InvalidArgument, NotFound, PermissionDenied
from tend_portal.identity_admin_client import ManageableModules, Module, ModuleCodeTaken

log = logging.getLogger(__name__)

blueprint = Blueprint("modules", __name__)

UPDATE, DELETE, RESTORE = "module.update", "module.delete", "module.restore"
# Who the navigation shows the link to; a convenience only, since identity decides what each person may manage.
MANAGING_ROLES = frozenset({"school_administrator", "lecturer"})
# Identity's rules (tend_identity.grpc_service), checked here first so a mistake is named on the form.
MAX_TITLE = 200
_CODE = re.compile(r"[A-Z0-9][A-Z0-9-]{1,19}")
_REFUSED = (
    "Only a module's leads and its school's administrators may change it, and only the school's administrators may"
    " create, withdraw or restore modules. Nothing was changed."
)
_DONE = {
    UPDATE: "{code} is now called {title}.",
    DELETE: "{code} {title} was withdrawn. Its history is kept, and you can restore it below.",
    RESTORE: "{code} {title} was restored.",
}


@blueprint.app_context_processor
def modules_navigation() -> dict[str, object]:
    current = g.get("current_session")
    roles = current.session.person.roles if isinstance(current, CurrentSession) else ()
    return {"show_modules": bool(MANAGING_ROLES.intersection(roles))}


def _assertion(current: CurrentSession) -> str:
    return current.session.assertion_for(IDENTITY_AUDIENCE)


def _page(
    manageable: ManageableModules,
    status: int = 200,
    new: dict[str, str] | None = None,
    errors: dict[str, str] | None = None,
) -> Response:
    body = render_template(
        "modules.html",
        manageable=manageable,
        new=new or {},
        errors=errors or {},
        done=get_flashed_messages(),
        max_title=MAX_TITLE,
        UPDATE=UPDATE,
        DELETE=DELETE,
        RESTORE=RESTORE,
    )
    return make_response(body, status)


def _refused() -> Response:
    body = render_template("error.html", title="You can't change this module", message=_REFUSED)
    return make_response(body, 403)


def _title_error(title: str) -> str | None:
    if not title:
        return "Enter the module's title."
    if len(title) > MAX_TITLE or not title.isprintable():
        return f"The title must be at most {MAX_TITLE} characters, on one line."
    return None


def _module_id(text: str) -> str:
    try:
        return str(uuid.UUID(text))
    except ValueError:
        # Not an id: no such module, as identity would say.
        raise NotFound("UpdateModule", "NOT_FOUND") from None


@blueprint.get("/modules")
def list_modules() -> Response:
    current = require_staff()
    return _page(portal().identity_admin.list_modules(_assertion(current)))


@blueprint.post("/modules")
def create_module() -> Response:
    current = require_staff()
    new = {
        "school_id": request.form.get("school_id", ""),
        "code": request.form.get("code", "").strip().upper(),
        "title": request.form.get("title", "").strip(),
    }
    errors: dict[str, str] = {}
    try:
        uuid.UUID(new["school_id"])
    except ValueError:
        errors["school_id"] = "Choose the school the module belongs to."
    if not _CODE.fullmatch(new["code"]):
        errors["code"] = "Enter a code of 2 to 20 capital letters, digits and dashes, for example CS101."
    if (title_error := _title_error(new["title"])) is not None:
        errors["title"] = title_error
    assertion = _assertion(current)
    if not errors:
        try:
            created = portal().identity_admin.create_module(assertion, new["school_id"], new["code"], new["title"])
        except PermissionDenied:
            return _refused()
        except ModuleCodeTaken:
            errors["code"] = "Another module already has this code. Choose a different code."
        except (InvalidArgument, NotFound):
            errors["school_id"] = "Identity could not create a module in that school. Check the details."
        else:
            log.info("module created", extra={"fields": {"module_id": created.module_id}})
            flash(f"{created.code} {created.title} was created.")
            return redirect(url_for("modules.list_modules"), 303)
    return _page(portal().identity_admin.list_modules(assertion), 400, new, errors)


@blueprint.post("/modules/<module_id>/title")
def update_title(module_id: str) -> Response:
    current = require_staff()
    module_id = _module_id(module_id)
    title = request.form.get("title", "").strip()
    if (title_error := _title_error(title)) is not None:
        manageable = portal().identity_admin.list_modules(_assertion(current))
        return _page(manageable, 400, errors={f"title-{module_id}": title_error})
    return _change(current, UPDATE, module_id, title)


@blueprint.post("/modules/<module_id>/delete")
def delete_module(module_id: str) -> Response:
    current = require_staff()
    return _change(current, DELETE, _module_id(module_id))


@blueprint.post("/modules/<module_id>/restore")
def restore_module(module_id: str) -> Response:
    current = require_staff()
    return _change(current, RESTORE, _module_id(module_id))


def _change(current: CurrentSession, action: str, module_id: str, title: str = "") -> Response:
    identity = portal().identity_admin
    assertion = _assertion(current)
    changed: Module
    try:
        if action == UPDATE:
            changed = identity.update_module(assertion, module_id, title)
        elif action == DELETE:
            changed = identity.delete_module(assertion, module_id)
        else:
            changed = identity.restore_module(assertion, module_id)
    except PermissionDenied:
        return _refused()
    log.info("module changed", extra={"fields": {"module_id": changed.module_id, "action": action}})
    flash(_DONE[action].format(code=changed.code, title=changed.title))
    return redirect(url_for("modules.list_modules"), 303)
