"""The generic event format (POST /events, JSON or CSV) and reference data (POST /reference, JSON)."""

from __future__ import annotations

import logging
from typing import Any

from flask import Blueprint, Response, jsonify, request

from tend_indicators.directory import DirectoryUnavailable
from tend_indicators.ingest import generic, reference_format
from tend_indicators.ingest.problems import Problem, RejectedInput
from tend_indicators.web_context import web_context

log = logging.getLogger(__name__)

blueprint = Blueprint("events", __name__)


def _problems(problems: list[Problem], status: int = 400) -> tuple[Response, int]:
    return jsonify(
        error=f"{len(problems)} problem(s); nothing was stored", problems=[p.as_json() for p in problems]
    ), status


def _unauthenticated() -> tuple[Response, int]:
    response, status = _problems(
        [Problem("request", "", "authenticate with HTTP Basic: the source's name and key")], 401
    )
    response.headers["WWW-Authenticate"] = 'Basic realm="tend-indicators"'
    return response, status


@blueprint.post("/events")
def events() -> Any:
    context = web_context()
    source = context.sources.authenticate()
    if source is None:
        return _unauthenticated()
    try:
        if request.mimetype == "application/json":
            raw = generic.parse_json(request.get_data())
            parsed = generic.validate(raw)
        elif request.mimetype == "text/csv":
            text = request.get_data().decode("utf-8-sig")
            # Lines are numbered as in the file: the header is line 1.
            parsed = generic.validate(generic.parse_csv(text), first_line=2, label="line")
        else:
            return _problems([Problem("Content-Type", "", "must be application/json or text/csv")])
        result = generic.ingest(context.pool, context.directory, source, parsed, context.settings.timezone)
    except UnicodeDecodeError:
        return _problems([Problem("body", "", "is not UTF-8 text")])
    except RejectedInput as exc:
        log.info("events refused", extra={"fields": {"source": source, "problems": len(exc.problems)}})
        return _problems(exc.problems, exc.status)
    except DirectoryUnavailable:
        return _problems([Problem("request", "", "identity is unavailable; nothing was stored, send again later")], 503)
    log.info(
        "events stored",
        extra={"fields": {"source": source, **result.as_json(), "unknown_students": len(result.unknown_students)}},
    )
    return jsonify(result.as_json()), 200


@blueprint.post("/reference")
def reference_data() -> Any:
    context = web_context()
    source = context.sources.authenticate()
    if source is None:
        return _unauthenticated()
    if request.mimetype != "application/json":
        return _problems([Problem("Content-Type", "", "must be application/json")])
    try:
        batch = reference_format.parse(request.get_data())
        result = reference_format.ingest(context.pool, context.directory, batch)
    except RejectedInput as exc:
        return _problems(exc.problems, exc.status)
    except DirectoryUnavailable:
        return _problems([Problem("request", "", "identity is unavailable; nothing was stored, send again later")], 503)
    log.info(
        "reference data stored",
        extra={
            "fields": {"source": source, "changed": result.changed, "unknown_students": len(result.unknown_students)}
        },
    )
    return jsonify(result.as_json()), 200
