"""The xAPI statements resource (xAPI-Communication.md 2.1): PUT with ?statementId= and POST of one statement or a
batch; GET of one statement by statementId or voidedStatementId, for the source that sent it (2.1.3), naming people by
pseudonym only. Statement queries (filters, lists) are not offered: Tend is not a learning record store, it takes
statements in for engagement. Every response carries X-Experience-API-Version: 1.0.3 and
X-Experience-API-Consistent-Through."""

from __future__ import annotations

import json
import logging
import re
import uuid
from datetime import UTC, datetime
from typing import Any

from flask import Blueprint, Response, jsonify, request

from tend_indicators.directory import DirectoryUnavailable
from tend_indicators.ingest import xapi, xapi_read
from tend_indicators.ingest.problems import Problem, RejectedInput
from tend_indicators.web_context import web_context

log = logging.getLogger(__name__)

VERSION_HEADER = "X-Experience-API-Version"
CONSISTENT_THROUGH_HEADER = "X-Experience-API-Consistent-Through"
# The parameters the single-statement form of GET allows besides the id (2.1.3.s2.b2), and their accepted values.
_FORMATS = frozenset({"ids", "exact", "canonical"})
_SINGLE_STATEMENT_EXTRAS = frozenset({"format", "attachments"})
LRS_VERSION = "1.0.3"
# 1.0 is read as 1.0.0 (xAPI-Communication.md 3.3); versions before 1.0.0 and from 1.1.0 on are refused.
_ACCEPTED_VERSION = re.compile(r"1\.0(?:\.\d+)?")

blueprint = Blueprint("xapi", __name__)


@blueprint.after_request
def add_version(response: Response) -> Response:
    response.headers[VERSION_HEADER] = LRS_VERSION
    # Statements are readable as soon as the request that stored them has been answered.
    response.headers[CONSISTENT_THROUGH_HEADER] = datetime.now(UTC).isoformat(timespec="milliseconds")
    return response


def problem_response(problems: list[Problem], status: int) -> tuple[Response, int]:
    return jsonify(
        error=problems[0].rule if len(problems) == 1 else f"{len(problems)} problems",
        problems=[p.as_json() for p in problems],
    ), status


def _refuse(rule: str, where: str = "request", status: int = 400) -> tuple[Response, int]:
    return problem_response([Problem(where, "", rule)], status)


def _source_and_version() -> str | tuple[Response, int]:
    """The authenticated source, or the refusal: wrong credentials, or a missing or unsupported version header."""
    source = web_context().sources.authenticate()
    if source is None:
        response, status = _refuse("authenticate with HTTP Basic: the source's name and key", status=401)
        response.headers["WWW-Authenticate"] = 'Basic realm="tend-indicators"'
        return response, status
    version = request.headers.get(VERSION_HEADER)
    if version is None:
        return _refuse(f"the {VERSION_HEADER} header is missing (send 1.0.3)", VERSION_HEADER)
    if not _ACCEPTED_VERSION.fullmatch(version.strip()):
        return _refuse(f"version {version[:20]!r} is not supported; this LRS accepts 1.0.x", VERSION_HEADER)
    return source


@blueprint.get("/xapi/statements")
def get_statement() -> Any:
    source = _source_and_version()
    if isinstance(source, tuple):
        return source
    wanted = _single_statement_request()
    if isinstance(wanted, tuple) and isinstance(wanted[0], Response):
        return wanted
    statement_id, voided = wanted
    context = web_context()
    with context.pool.connection() as conn:
        found = xapi_read.find(conn, source, statement_id, voided)
    if found is None:
        parameter = "voidedStatementId" if voided else "statementId"
        return _refuse(f"no statement with this id from this source{' was voided' if voided else ''}", parameter, 404)
    response = jsonify(xapi_read.as_json(found, context.settings.xapi_pseudonym_home_page))
    response.last_modified = found.stored_at
    return response


def _single_statement_request() -> tuple[uuid.UUID, bool] | tuple[Response, int]:
    """The statement asked for and whether by voidedStatementId; a 400 naming the parameter otherwise."""
    args = request.args
    by_id, by_voided = args.get("statementId"), args.get("voidedStatementId")
    if by_id is not None and by_voided is not None:
        return _refuse("give statementId or voidedStatementId, not both", "voidedStatementId")
    if by_id is None and by_voided is None:
        named = next(iter(args), None)
        if named is not None:
            return _refuse(
                f"the {named[:40]} parameter is not supported: only single statements can be read, by statementId or"
                " voidedStatementId",
                named[:40],
            )
        return _refuse("give statementId or voidedStatementId: statement queries are not supported", "statementId")
    parameter = "statementId" if by_id is not None else "voidedStatementId"
    other = next((name for name in args if name not in _SINGLE_STATEMENT_EXTRAS | {parameter}), None)
    if other is not None:
        return _refuse(f"the {other[:40]} parameter cannot be combined with {parameter}", other[:40])
    if args.get("format", "exact") not in _FORMATS:
        return _refuse("format must be ids, exact or canonical", "format")
    attachments = args.get("attachments", "false")
    if attachments == "true":
        return _refuse("attachments=true is not supported: attachments are not kept", "attachments")
    if attachments != "false":
        return _refuse("attachments must be true or false", "attachments")
    try:
        statement_id = uuid.UUID(str(by_id if by_id is not None else by_voided))
    except ValueError:
        return _refuse(f"{parameter} is not a UUID", parameter)
    return statement_id, by_voided is not None


@blueprint.route("/xapi/statements", methods=["POST", "PUT"])
def statements() -> Any:
    context = web_context()
    source = _source_and_version()
    if isinstance(source, tuple):
        return source
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
