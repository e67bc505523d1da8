"""The xAPI statements resource (xAPI-Communication.md 2.1): PUT with ?statementId= and POST of one statement or a
batch. Every response carries X-Experience-API-Version: 1.0.3. Reading statements back (GET) is not offered: Tend is
not a learning record store, it takes statements in for engagement."""

from __future__ import annotations

import json
import logging
import re
import uuid
from typing import Any

from flask import Blueprint, Response, jsonify, request

from tend_indicators.directory import DirectoryUnavailable
from tend_indicators.ingest import xapi
from tend_indicators.ingest.problems import Problem, RejectedInput
from tend_indicators.web_context import web_context

log = logging.getLogger(__name__)

VERSION_HEADER = "X-Experience-API-Version"
LRS_VERSION = "1.0.3"
# 1.0 is read as 1.0.0 (xAPI-Communication.md 3.3); versions before 1.0.0 and from 1.1.0 on are refused.
_ACCEPTED_VERSION = re.compile(r"1\.0(?:\.\d+)?")

blueprint = Blueprint("xapi", __name__)


@blueprint.after_request
def add_version(response: Response) -> Response:
    response.headers[VERSION_HEADER] = LRS_VERSION
    return response


def problem_response(problems: list[Problem], status: int) -> tuple[Response, int]:
    return jsonify(
        error=problems[0].rule if len(problems) == 1 else f"{len(problems)} problems",
        problems=[p.as_json() for p in problems],
    ), status


def _refuse(rule: str, where: str = "request", status: int = 400) -> tuple[Response, int]:
    return problem_response([Problem(where, "", rule)], status)


@blueprint.route("/xapi/statements", methods=["POST", "PUT"])
def statements() -> Any:
    context = web_context()
    source = context.sources.authenticate()
    if source is None:
        response, status = _refuse("authenticate with HTTP Basic: the source's name and key", status=401)
        response.headers["WWW-Authenticate"] = 'Basic realm="tend-indicators"'
        return response, status
    version = request.headers.get(VERSION_HEADER)
    if version is None:
        return _refuse(f"the {VERSION_HEADER} header is missing (send 1.0.3)", VERSION_HEADER)
    if not _ACCEPTED_VERSION.fullmatch(version.strip()):
        return _refuse(f"version {version[:20]!r} is not supported; this LRS accepts 1.0.x", VERSION_HEADER)
    if request.mimetype != "application/json":
        return _refuse(
            "the body must be application/json (multipart/mixed attachments are not accepted)", "Content-Type"
        )
    try:
        body = json.loads(request.get_data())
    except (ValueError, UnicodeDecodeError):
        return _refuse("the body is not valid JSON", "body")
    if request.method == "PUT":
        batch = _put_statement(body)
        if isinstance(batch, tuple):
            return batch
    else:
        if "statementId" in request.args:
            return _refuse("statementId is for PUT; POST takes statements with or without ids", "statementId")
        batch = body if isinstance(body, list) else [body]
    try:
        prepared = xapi.prepare(batch, context.settings.xapi_account_home_pages)
        result = xapi.store(context.pool, context.directory, source, prepared, context.settings.timezone)
    except RejectedInput as exc:
        log.info(
            "xapi statements refused",
            extra={"fields": {"source": source, "status": exc.status, "problems": len(exc.problems)}},
        )
        return problem_response(exc.problems, exc.status)
    except DirectoryUnavailable:
        log.warning("identity unavailable; statements not stored", extra={"fields": {"source": source}})
        return _refuse("identity is unavailable; nothing was stored, send again later", status=503)
    log.info(
        "xapi statements stored",
        extra={
            "fields": {
                "source": source,
                "statements": len(batch),
                "stored": result.stored,
                "already_stored": result.already_stored,
                "not_students": result.not_students,
            }
        },
    )
    if request.method == "PUT":
        return Response(status=204)
    return jsonify(result.ids), 200


def _put_statement(body: Any) -> list[Any] | tuple[Response, int]:
    statement_id = request.args.get("statementId")
    if not statement_id:
        return _refuse("PUT needs the statementId parameter", "statementId")
    try:
        parsed = uuid.UUID(statement_id)
    except ValueError:
        return _refuse("statementId is not a UUID", "statementId")
    if not isinstance(body, dict):
        return _refuse("PUT takes one statement (a JSON object)", "body")
    given = body.get("id")
    if given is not None:
        try:
            if uuid.UUID(str(given)) != parsed:
                return _refuse("the statement's id differs from statementId", "statement 0")
        except ValueError:
            pass  # the validator names the malformed id
    return [{**body, "id": body.get("id", str(parsed))}]
