"""Validation of xAPI 1.0.3 statements (xAPI-Data.md, part two of the specification).

What is checked, each failure reported with the property's path:
- only the properties the specification defines (2.2.s4.b1.b7, 2.2.s4.b8: the LRS SHOULD* reject additional
  properties, and this one does), in the case it gives them (2.2.s4.b1.b5);
- no null values except inside extensions (2.2.s4.b1.b1);
- types: strings, numbers and booleans where the specification asks for them (2.2.s4.b1.b2-b3);
- formats: UUIDs (id, registration, StatementRef), IRIs with a scheme (verb id, activity ids, extension keys,
  usageType), IRLs (account homePage), mailto IRIs, SHA-1 sums, language maps, ISO 8601 timestamps (RFC 3339 form,
  with the -00:00 offset refused as 2.4.7 says it SHOULD* be) and durations, the 1.0.x statement version;
- actors: an Agent has exactly one inverse functional identifier, an account both homePage and name; a Group has an
  objectType and, when anonymous, members;
- objects: Activity (default), Agent, Group, StatementRef or SubStatement; a SubStatement has no id, stored,
  version or authority and no SubStatement object;
- result scores within their bounds; attachments complete. Attachments whose content would travel in a
  multipart/mixed request (no fileUrl) are refused: this endpoint takes JSON only.

IRIs and language tags are checked best-effort, as 2.2.s4.b6-b7 allow.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

STATEMENT_PROPERTIES = frozenset(
    {"id", "actor", "verb", "object", "result", "context", "timestamp", "stored", "authority", "version", "attachments"}
)
_UUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
_IRI = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*:[^\s<>\"{}|\\^`]+")
_IRL = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://[^\s<>\"{}|\\^`]+")
_MAILTO = re.compile(r"mailto:[^\s@]+@[^\s@]+")
_SHA1 = re.compile(r"[0-9a-fA-F]{40}")
_LANGUAGE_TAG = re.compile(r"(?:[A-Za-z]{2,8}|[xX])(?:-[A-Za-z0-9]{1,8})*")
_TIMESTAMP = re.compile(r"(\d{4})-(\d{2})-(\d{2})[Tt](\d{2}):(\d{2}):(\d{2})(\.\d+)?([Zz]|[+-]\d{2}:?\d{2}|[+-]\d{2})?")
_DURATION = re.compile(
    r"P(?:\d+(?:\.\d+)?W|(?=\d|T\d)(?:\d+(?:\.\d+)?Y)?(?:\d+(?:\.\d+)?M)?(?:\d+(?:\.\d+)?D)?"
    r"(?:T(?=\d)(?:\d+(?:\.\d+)?H)?(?:\d+(?:\.\d+)?M)?(?:\d+(?:\.\d+)?S)?)?)"
)
_VERSION = re.compile(r"1\.0(?:\.\d+)?")
_IFIS = ("mbox", "mbox_sha1sum", "openid", "account")
_OBJECT_TYPES = ("Activity", "Agent", "Group", "StatementRef", "SubStatement")
_CONTEXT_ACTIVITY_KEYS = frozenset({"parent", "grouping", "category", "other"})
_INTERACTION_TYPES = frozenset(
    {"true-false", "choice", "fill-in", "long-fill-in", "matching", "performance", "sequencing", "likert", "numeric",
     "other"}
)  # fmt: skip


def parse_timestamp(value: str) -> datetime | None:
    """An ISO 8601 timestamp in RFC 3339 form as an aware datetime (UTC assumed without a zone); None if invalid or
    using the -00:00 offset."""
    match = _TIMESTAMP.fullmatch(value)
    if match is None:
        return None
    zone = match.group(8) or "Z"
    if zone in {"-00:00", "-0000", "-00"}:
        return None
    text = value
    if not match.group(8):
        text += "+00:00"
    text = text.replace("Z", "+00:00").replace("z", "+00:00").replace("t", "T")
    if re.search(r"[+-]\d{2}$", text):
        text += ":00"
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        return None


class StatementValidator:
    """Collects every problem of one statement as "path: what is wrong"."""

    def __init__(self) -> None:
        self.problems: list[str] = []
        self._paths: set[str] = set()

    def validate(self, statement: Any) -> list[str]:
        self.problems = []
        self._paths = set()
        if not isinstance(statement, dict):
            return ["a statement must be a JSON object"]
        self._no_nulls(statement, "")
        self._statement(statement, "", sub=False)
        return self.problems

    def _fail(self, path: str, rule: str) -> None:
        # One problem per property: a null value is not also reported as, say, not a UUID.
        if path in self._paths:
            return
        self._paths.add(path)
        self.problems.append(f"{path}: {rule}" if path else rule)

    def _no_nulls(self, value: Any, path: str) -> None:
        if value is None:
            self._fail(path or "statement", "null values are not allowed (except inside extensions)")
        elif isinstance(value, dict):
            for key, item in value.items():
                if key != "extensions":
                    self._no_nulls(item, f"{path}.{key}" if path else key)
        elif isinstance(value, list):
            for index, item in enumerate(value):
                self._no_nulls(item, f"{path}[{index}]")

    def _keys(self, value: Mapping[str, Any], allowed: frozenset[str] | set[str], path: str) -> None:
        for key in value:
            if key not in allowed:
                where = f"{path}.{key}" if path else key
                self._fail(where, "is not a property the xAPI specification allows here")

    def _statement(self, statement: Mapping[str, Any], path: str, *, sub: bool) -> None:
        prefix = f"{path}." if path else ""
        if sub:
            allowed = STATEMENT_PROPERTIES - {"id", "stored", "version", "authority"}
            self._keys(statement, allowed | {"objectType"}, path)
        else:
            self._keys(statement, STATEMENT_PROPERTIES, path)
        if not sub and "id" in statement:
            self._uuid(statement["id"], f"{prefix}id")
        if "actor" not in statement:
            self._fail(f"{prefix}actor", "is required (the Agent or Group the statement is about)")
        else:
            self._actor(statement["actor"], f"{prefix}actor")
        if "verb" not in statement:
            self._fail(f"{prefix}verb", "is required")
        else:
            self._verb(statement["verb"], f"{prefix}verb")
        if "object" not in statement:
            self._fail(f"{prefix}object", "is required")
        else:
            self._object(statement["object"], f"{prefix}object", sub=sub)
        self._statement_details(statement, prefix)

    def _statement_details(self, statement: Mapping[str, Any], prefix: str) -> None:
        if "result" in statement:
            self._result(statement["result"], f"{prefix}result")
        if "context" in statement:
            self._context(statement["context"], f"{prefix}context")
        for name in ("timestamp", "stored"):
            if name in statement:
                self._timestamp(statement[name], f"{prefix}{name}")
        if "authority" in statement:
            self._actor(statement["authority"], f"{prefix}authority")
        if "version" in statement and not (
            isinstance(statement["version"], str) and _VERSION.fullmatch(statement["version"])
        ):
            self._fail(f"{prefix}version", "must be a 1.0.x version")
        if "attachments" in statement:
            self._attachments(statement["attachments"], f"{prefix}attachments")

    def _object_of(self, value: Any, path: str) -> Mapping[str, Any] | None:
        if not isinstance(value, dict):
            self._fail(path, "must be an object")
            return None
        return value

    def _string(self, value: Any, path: str) -> bool:
        if not isinstance(value, str):
            self._fail(path, "must be a string")
            return False
        return True

    def _format(self, value: Any, path: str, pattern: re.Pattern[str], what: str) -> None:
        if not isinstance(value, str) or not pattern.fullmatch(value):
            self._fail(path, f"is not {what}")

    def _uuid(self, value: Any, path: str) -> None:
        self._format(value, path, _UUID, "a UUID in standard string form")

    def _iri(self, value: Any, path: str) -> None:
        self._format(value, path, _IRI, "an IRI (an absolute identifier with a scheme)")

    def _timestamp(self, value: Any, path: str) -> None:
        if not isinstance(value, str) or parse_timestamp(value) is None:
            self._fail(path, "is not an ISO 8601 timestamp (RFC 3339 form, a zone other than -00:00)")

    def _language_map(self, value: Any, path: str) -> None:
        language_map = self._object_of(value, path)
        if language_map is None:
            return
        for tag, text in language_map.items():
            if not _LANGUAGE_TAG.fullmatch(tag):
                self._fail(f"{path}.{tag}", "is not a language tag (RFC 5646)")
            self._string(text, f"{path}.{tag}")

    def _extensions(self, value: Any, path: str) -> None:
        extensions = self._object_of(value, path)
        if extensions is None:
            return
        for key in extensions:
            self._iri(key, f"{path} key")

    def _actor(self, value: Any, path: str, *, require_object_type: bool = False) -> None:
        actor = self._object_of(value, path)
        if actor is None:
            return
        object_type = actor.get("objectType", "Agent")
        if require_object_type and "objectType" not in actor:
            self._fail(f"{path}.objectType", "is required when an Agent or Group is the object")
        if object_type == "Group":
            self._group(actor, path)
        elif object_type == "Agent":
            self._agent(actor, path)
        else:
            self._fail(f"{path}.objectType", 'must be "Agent" or "Group"')

    def _agent(self, agent: Mapping[str, Any], path: str) -> None:
        self._keys(agent, {"objectType", "name", *_IFIS}, path)
        if "name" in agent:
            self._string(agent["name"], f"{path}.name")
        identifiers = [key for key in _IFIS if key in agent]
        if len(identifiers) != 1:
            self._fail(path, "an Agent must have exactly one of mbox, mbox_sha1sum, openid and account")
        self._identifiers(agent, path)

    def _group(self, group: Mapping[str, Any], path: str) -> None:
        self._keys(group, {"objectType", "name", "member", *_IFIS}, path)
        identifiers = [key for key in _IFIS if key in group]
        if len(identifiers) > 1:
            self._fail(path, "a Group must have at most one of mbox, mbox_sha1sum, openid and account")
        self._identifiers(group, path)
        members = group.get("member")
        if members is None:
            if not identifiers:
                self._fail(f"{path}.member", "is required for an anonymous Group")
            return
        if not isinstance(members, list):
            self._fail(f"{path}.member", "must be a list of Agents")
            return
        for index, member in enumerate(members):
            member_object = self._object_of(member, f"{path}.member[{index}]")
            if member_object is not None:
                if member_object.get("objectType", "Agent") != "Agent":
                    self._fail(f"{path}.member[{index}].objectType", 'must be "Agent"')
                else:
                    self._agent(member_object, f"{path}.member[{index}]")

    def _identifiers(self, actor: Mapping[str, Any], path: str) -> None:
        if "mbox" in actor:
            self._format(actor["mbox"], f"{path}.mbox", _MAILTO, "a mailto IRI")
        if "mbox_sha1sum" in actor:
            self._format(actor["mbox_sha1sum"], f"{path}.mbox_sha1sum", _SHA1, "a hex SHA-1 sum")
        if "openid" in actor:
            self._iri(actor["openid"], f"{path}.openid")
        if "account" in actor:
            account = self._object_of(actor["account"], f"{path}.account")
            if account is not None:
                self._keys(account, {"homePage", "name"}, f"{path}.account")
                if "homePage" not in account or "name" not in account:
                    self._fail(f"{path}.account", "needs both homePage and name")
                if "homePage" in account:
                    self._format(account["homePage"], f"{path}.account.homePage", _IRL, "an IRL")
                if "name" in account:
                    self._string(account["name"], f"{path}.account.name")

    def _verb(self, value: Any, path: str) -> None:
        verb = self._object_of(value, path)
        if verb is None:
            return
        self._keys(verb, {"id", "display"}, path)
        if "id" not in verb:
            self._fail(f"{path}.id", "is required")
        else:
            self._iri(verb["id"], f"{path}.id")
        if "display" in verb:
            self._language_map(verb["display"], f"{path}.display")

    def _object(self, value: Any, path: str, *, sub: bool) -> None:
        target = self._object_of(value, path)
        if target is None:
            return
        object_type = target.get("objectType", "Activity")
        if object_type not in _OBJECT_TYPES:
            self._fail(f"{path}.objectType", f"must be one of {', '.join(_OBJECT_TYPES)}")
            return
        checks: dict[str, Callable[[Mapping[str, Any], str], None]] = {
            "Activity": self._activity,
            "StatementRef": self._statement_ref,
        }
        if object_type in checks:
            checks[object_type](target, path)
        elif object_type in ("Agent", "Group"):
            self._actor(target, path, require_object_type=True)
        elif sub:
            self._fail(f"{path}.objectType", "a SubStatement cannot have a SubStatement as its object")
        else:
            self._statement(target, path, sub=True)

    def _statement_ref(self, ref: Mapping[str, Any], path: str) -> None:
        self._keys(ref, {"objectType", "id"}, path)
        if "id" not in ref:
            self._fail(f"{path}.id", "is required")
        else:
            self._uuid(ref["id"], f"{path}.id")

    def _activity(self, activity: Mapping[str, Any], path: str) -> None:
        self._keys(activity, {"objectType", "id", "definition"}, path)
        if "id" not in activity:
            self._fail(f"{path}.id", "is required")
        else:
            self._iri(activity["id"], f"{path}.id")
        if "definition" in activity:
            self._definition(activity["definition"], f"{path}.definition")

    def _definition(self, value: Any, path: str) -> None:
        definition = self._object_of(value, path)
        if definition is None:
            return
        allowed = {
            "name", "description", "type", "moreInfo", "extensions", "interactionType", "correctResponsesPattern",
            "choices", "scale", "source", "target", "steps",
        }  # fmt: skip
        self._keys(definition, allowed, path)
        for name in ("name", "description"):
            if name in definition:
                self._language_map(definition[name], f"{path}.{name}")
        if "type" in definition:
            self._iri(definition["type"], f"{path}.type")
        if "moreInfo" in definition:
            self._format(definition["moreInfo"], f"{path}.moreInfo", _IRL, "an IRL")
        if "extensions" in definition:
            self._extensions(definition["extensions"], f"{path}.extensions")
        if "interactionType" in definition and definition["interactionType"] not in _INTERACTION_TYPES:
            self._fail(f"{path}.interactionType", "is not an interaction type of the specification")
        for name in ("choices", "scale", "source", "target", "steps"):
            if name in definition:
                self._interaction_components(definition[name], f"{path}.{name}")
        if "correctResponsesPattern" in definition:
            pattern = definition["correctResponsesPattern"]
            if not isinstance(pattern, list) or not all(isinstance(item, str) for item in pattern):
                self._fail(f"{path}.correctResponsesPattern", "must be a list of strings")

    def _interaction_components(self, value: Any, path: str) -> None:
        if not isinstance(value, list):
            self._fail(path, "must be a list of interaction components")
            return
        for index, component in enumerate(value):
            item = self._object_of(component, f"{path}[{index}]")
            if item is None:
                continue
            self._keys(item, {"id", "description"}, f"{path}[{index}]")
            if not isinstance(item.get("id"), str):
                self._fail(f"{path}[{index}].id", "is required as a string")
            if "description" in item:
                self._language_map(item["description"], f"{path}[{index}].description")

    def _result(self, value: Any, path: str) -> None:
        result = self._object_of(value, path)
        if result is None:
            return
        self._keys(result, {"score", "success", "completion", "response", "duration", "extensions"}, path)
        for name in ("success", "completion"):
            if name in result and not isinstance(result[name], bool):
                self._fail(f"{path}.{name}", "must be true or false")
        if "response" in result:
            self._string(result["response"], f"{path}.response")
        if "duration" in result:
            self._format(result["duration"], f"{path}.duration", _DURATION, "an ISO 8601 duration")
        if "extensions" in result:
            self._extensions(result["extensions"], f"{path}.extensions")
        if "score" in result:
            self._score(result["score"], f"{path}.score")

    def _score(self, value: Any, path: str) -> None:
        score = self._object_of(value, path)
        if score is None:
            return
        self._keys(score, {"scaled", "raw", "min", "max"}, path)
        numbers: dict[str, float] = {}
        for name in ("scaled", "raw", "min", "max"):
            if name in score:
                item = score[name]
                if isinstance(item, bool) or not isinstance(item, (int, float)):
                    self._fail(f"{path}.{name}", "must be a number")
                else:
                    numbers[name] = float(item)
        if "scaled" in numbers and not -1 <= numbers["scaled"] <= 1:
            self._fail(f"{path}.scaled", "must be between -1 and 1")
        if "min" in numbers and "max" in numbers and numbers["min"] > numbers["max"]:
            self._fail(f"{path}.min", "must not exceed max")
        if "raw" in numbers:
            if "min" in numbers and numbers["raw"] < numbers["min"]:
                self._fail(f"{path}.raw", "must not be below min")
            if "max" in numbers and numbers["raw"] > numbers["max"]:
                self._fail(f"{path}.raw", "must not exceed max")

    def _context(self, value: Any, path: str) -> None:
        context = self._object_of(value, path)
        if context is None:
            return
        allowed = {
            "registration", "instructor", "team", "contextActivities", "revision", "platform", "language", "statement",
            "extensions",
        }  # fmt: skip
        self._keys(context, allowed, path)
        if "registration" in context:
            self._uuid(context["registration"], f"{path}.registration")
        for name in ("revision", "platform"):
            if name in context:
                self._string(context[name], f"{path}.{name}")
        if "language" in context:
            self._format(context["language"], f"{path}.language", _LANGUAGE_TAG, "a language tag (RFC 5646)")
        if "extensions" in context:
            self._extensions(context["extensions"], f"{path}.extensions")
        if "contextActivities" in context:
            self._context_activities(context["contextActivities"], f"{path}.contextActivities")
        self._context_people(context, path)

    def _context_people(self, context: Mapping[str, Any], path: str) -> None:
        if "instructor" in context:
            self._actor(context["instructor"], f"{path}.instructor")
        if "team" in context:
            team = self._object_of(context["team"], f"{path}.team")
            if team is not None:
                if team.get("objectType") != "Group":
                    self._fail(f"{path}.team.objectType", 'must be "Group"')
                else:
                    self._group(team, f"{path}.team")
        if "statement" in context:
            statement = self._object_of(context["statement"], f"{path}.statement")
            if statement is not None:
                if statement.get("objectType") != "StatementRef":
                    self._fail(f"{path}.statement.objectType", 'must be "StatementRef"')
                self._statement_ref(statement, f"{path}.statement")

    def _context_activities(self, value: Any, path: str) -> None:
        activities = self._object_of(value, path)
        if activities is None:
            return
        self._keys(activities, _CONTEXT_ACTIVITY_KEYS, path)
        for key, item in activities.items():
            items = item if isinstance(item, list) else [item]
            for index, activity in enumerate(items):
                activity_object = self._object_of(activity, f"{path}.{key}[{index}]")
                if activity_object is None:
                    continue
                if activity_object.get("objectType", "Activity") != "Activity":
                    self._fail(f"{path}.{key}[{index}].objectType", 'must be "Activity"')
                else:
                    self._activity(activity_object, f"{path}.{key}[{index}]")

    def _attachments(self, value: Any, path: str) -> None:
        if not isinstance(value, list):
            self._fail(path, "must be a list of attachments")
            return
        for index, item in enumerate(value):
            where = f"{path}[{index}]"
            attachment = self._object_of(item, where)
            if attachment is None:
                continue
            self._keys(
                attachment, {"usageType", "display", "description", "contentType", "length", "sha2", "fileUrl"}, where
            )
            for required in ("usageType", "display", "contentType", "length", "sha2"):
                if required not in attachment:
                    self._fail(f"{where}.{required}", "is required")
            if "usageType" in attachment:
                self._iri(attachment["usageType"], f"{where}.usageType")
            if "display" in attachment:
                self._language_map(attachment["display"], f"{where}.display")
            length = attachment.get("length")
            if "length" in attachment and (isinstance(length, bool) or not isinstance(length, int) or length < 0):
                self._fail(f"{where}.length", "must be a whole number of bytes")
            if "fileUrl" in attachment:
                self._format(attachment["fileUrl"], f"{where}.fileUrl", _IRL, "an IRL")
            else:
                self._fail(where, "has no fileUrl: its content would need a multipart/mixed request, not taken here")
