"""Rule settings per institution and programme, and each institution's term calendar.

The defaults follow the University of Nottingham's Student Engagement Data Use Policy (the seeds): contact may be
considered after 14 consecutive days of disengagement, for persistent or repeated low engagement, for a sudden and
significant drop, and for sponsored-visa students with low engagement (the long-standing sponsor rule of 10
consecutive missed expected contact points). An institution's settings override the defaults and a programme's
override its institution's, rule by rule and value by value.

The settings file is JSON:

    {
      "defaults": {"no_engagement": {"days": 14}},
      "institutions": {
        "uon": {
          "calendar": {"terms": [{"name": "autumn", "starts_on": "2026-09-28", "ends_on": "2026-12-18"}],
                       "breaks": [{"name": "reading week", "starts_on": "2026-11-02", "ends_on": "2026-11-08"}]},
          "rules": {"missed_assignment": {"grace_days": 5}},
          "programmes": {"prog-medicine": {"rules": {"no_engagement": {"days": 10}}}}
        }
      }
    }
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

from tend_indicators.calendar import Period, TermCalendar


class RulesConfigError(ValueError):
    """The rule settings are malformed; the message names the setting."""


# CORROBORATION. Activity in the systems Tend sees is a weak signal on its own: on the OULAD presentation a quiet
# fortnight, a low week or a drop is as common among students who pass as among those who do not (docs/indicators.md).
# By default these three rules therefore speak only for a student who is also behind with expected work (an
# assignment not submitted within its grace period) on a module run they are registered on: there the quiet is
# "without known cause", in the policy's words, and the tutor sees it as evidence beside the missed work. Where no
# assignment is expected of the student at all, nothing can corroborate, and the rules speak alone.


@dataclass(frozen=True)
class NoEngagementRule:
    """No engagement from any (listed) source for `days` consecutive term days; breaks are not counted."""

    enabled: bool = True
    days: int = 14
    # Sources that count as engagement; empty means every source.
    sources: tuple[str, ...] = ()
    # Flag a gap only when the student is also behind with expected work (see CORROBORATION below); false flags
    # every gap, the policy's literal criterion.
    corroborated: bool = True


@dataclass(frozen=True)
class LowEngagementRule:
    """Persistent or repeated low engagement: in `low_weeks` of the last `window_weeks` term weeks, the student's
    activity on a module run was at or below the cohort's `quantile` (and below `max_share_of_median` of the cohort's
    median, so that a cohort where most do nothing in a week flags nobody)."""

    enabled: bool = True
    quantile: float = 0.1
    low_weeks: int = 4
    window_weeks: int = 5
    max_share_of_median: float = 0.25
    corroborated: bool = True


@dataclass(frozen=True)
class SuddenDropRule:
    """A sudden, significant drop against the student's own baseline, both measured relative to the cohort's median
    so that a quiet week for everyone is no drop: over the last `recent_weeks` term weeks the student's share of the
    cohort median fell to `drop_to` of their share over the `baseline_weeks` before, from a baseline of at least
    `min_baseline_share` of the median."""

    enabled: bool = True
    recent_weeks: int = 2
    baseline_weeks: int = 6
    drop_to: float = 0.2
    min_baseline_share: float = 0.5
    corroborated: bool = True


@dataclass(frozen=True)
class MissedAssignmentRule:
    """An expected assignment not submitted within `grace_days` of its deadline (late submission allowed that long).
    When `quiet_days` is above zero, a missed deadline is flagged already `early_grace_days` after it if the
    student had no engagement in the `quiet_days` before the deadline either."""

    enabled: bool = True
    grace_days: int = 7
    early_grace_days: int = 4
    quiet_days: int = 7


@dataclass(frozen=True)
class VisaContactPointsRule:
    """A sponsored-visa student missed `consecutive` expected contact points in a row."""

    enabled: bool = True
    consecutive: int = 10


@dataclass(frozen=True)
class RuleSet:
    no_engagement: NoEngagementRule = field(default_factory=NoEngagementRule)
    low_engagement: LowEngagementRule = field(default_factory=LowEngagementRule)
    sudden_drop: SuddenDropRule = field(default_factory=SuddenDropRule)
    missed_assignment: MissedAssignmentRule = field(default_factory=MissedAssignmentRule)
    visa_contact_points: VisaContactPointsRule = field(default_factory=VisaContactPointsRule)


RULE_NAMES = tuple(f.name for f in dataclasses.fields(RuleSet))


@dataclass(frozen=True)
class RulesConfig:
    """The parsed settings file."""

    defaults: Mapping[str, Any] = field(default_factory=dict)
    institutions: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)

    def calendar(self, institution: str) -> TermCalendar:
        raw = self.institutions.get(institution, {}).get("calendar", {})
        return _calendar(raw, f"institutions.{institution}.calendar")

    def rules(self, institution: str, programme: str | None) -> RuleSet:
        layers: list[tuple[str, Mapping[str, Any]]] = [("defaults", self.defaults)]
        inst = self.institutions.get(institution, {})
        layers.append((f"institutions.{institution}.rules", inst.get("rules", {})))
        if programme:
            programme_rules = inst.get("programmes", {}).get(programme, {}).get("rules", {})
            layers.append((f"institutions.{institution}.programmes.{programme}.rules", programme_rules))
        return _rule_set(layers)


def load_rules_config(path: str) -> RulesConfig:
    """Reads and checks the file (every institution's and programme's rules are built once, so any typo fails at
    start-up); an empty path gives the defaults."""
    if not path:
        return RulesConfig()
    try:
        raw = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise RulesConfigError(f"cannot read the rules file {path}: {exc}") from exc
    return parse_rules_config(raw)


def parse_rules_config(raw: Any) -> RulesConfig:
    if not isinstance(raw, dict):
        raise RulesConfigError("the rules file must hold a JSON object")
    unknown = set(raw) - {"defaults", "institutions"}
    if unknown:
        raise RulesConfigError(f"unknown top-level setting(s): {', '.join(sorted(unknown))}")
    config = RulesConfig(defaults=raw.get("defaults", {}), institutions=raw.get("institutions", {}))
    config.rules("", None)
    for institution, settings in config.institutions.items():
        extra = set(settings) - {"calendar", "rules", "programmes"}
        if extra:
            raise RulesConfigError(f"institutions.{institution}: unknown setting(s) {', '.join(sorted(extra))}")
        config.calendar(institution)
        config.rules(institution, None)
        for programme in settings.get("programmes", {}):
            config.rules(institution, programme)
    return config


def _rule_set(layers: list[tuple[str, Mapping[str, Any]]]) -> RuleSet:
    values: dict[str, dict[str, Any]] = {name: {} for name in RULE_NAMES}
    for where, layer in layers:
        if not isinstance(layer, Mapping):
            raise RulesConfigError(f"{where}: must be an object")
        for rule_name, settings in layer.items():
            if rule_name not in values:
                raise RulesConfigError(f"{where}: unknown rule {rule_name!r}")
            if not isinstance(settings, Mapping):
                raise RulesConfigError(f"{where}.{rule_name}: must be an object")
            values[rule_name].update(settings)
    built: dict[str, Any] = {}
    for rule_field in dataclasses.fields(RuleSet):
        rule_class = rule_field.default_factory
        built[rule_field.name] = _rule(rule_class, values[rule_field.name], rule_field.name)
    return RuleSet(**built)


def _rule(rule_class: Any, settings: Mapping[str, Any], name: str) -> Any:
    defaults = rule_class()
    kwargs: dict[str, Any] = {}
    for setting, value in settings.items():
        if not hasattr(defaults, setting):
            raise RulesConfigError(f"{name}: unknown setting {setting!r}")
        current = getattr(defaults, setting)
        kwargs[setting] = _typed(value, current, f"{name}.{setting}")
    rule = rule_class(**kwargs)
    _check_ranges(rule, name)
    return rule


def _typed(value: Any, like: Any, where: str) -> Any:
    if isinstance(like, bool):
        if not isinstance(value, bool):
            raise RulesConfigError(f"{where}: must be true or false")
        return value
    if isinstance(like, int):
        if isinstance(value, bool) or not isinstance(value, int):
            raise RulesConfigError(f"{where}: must be a whole number")
        return value
    if isinstance(like, float):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise RulesConfigError(f"{where}: must be a number")
        return float(value)
    if isinstance(like, tuple):
        if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
            raise RulesConfigError(f"{where}: must be a list of source names")
        return tuple(value)
    raise RulesConfigError(f"{where}: unsupported setting")


def _check_ranges(rule: Any, name: str) -> None:
    problems = []
    for setting in dataclasses.fields(rule):
        value = getattr(rule, setting.name)
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            continue
        if setting.name in {
            "quantile",
            "drop_to",
            "min_baseline_share",
            "max_share_of_median",
        }:
            if not 0 <= value <= 1:
                problems.append(f"{name}.{setting.name}: must be between 0 and 1")
        elif setting.name in {"grace_days", "early_grace_days", "quiet_days"}:
            if not 0 <= value <= 365:
                problems.append(f"{name}.{setting.name}: must be between 0 and 365")
        elif not 1 <= value <= 365:
            problems.append(f"{name}.{setting.name}: must be between 1 and 365")
    if isinstance(rule, LowEngagementRule) and rule.low_weeks > rule.window_weeks:
        problems.append(f"{name}.low_weeks: must not exceed window_weeks")
    if problems:
        raise RulesConfigError("; ".join(problems))


def _calendar(raw: Any, where: str) -> TermCalendar:
    if not isinstance(raw, Mapping):
        raise RulesConfigError(f"{where}: must be an object")
    extra = set(raw) - {"terms", "breaks"}
    if extra:
        raise RulesConfigError(f"{where}: unknown setting(s) {', '.join(sorted(extra))}")
    return TermCalendar(
        terms=tuple(_periods(raw.get("terms", []), f"{where}.terms")),
        breaks=tuple(_periods(raw.get("breaks", []), f"{where}.breaks")),
    )


def _periods(raw: Any, where: str) -> list[Period]:
    if not isinstance(raw, list):
        raise RulesConfigError(f"{where}: must be a list")
    periods = []
    for index, item in enumerate(raw):
        if not isinstance(item, Mapping):
            raise RulesConfigError(f"{where}[{index}]: must be an object with starts_on and ends_on")
        try:
            periods.append(
                Period(
                    starts_on=date.fromisoformat(str(item["starts_on"])),
                    ends_on=date.fromisoformat(str(item["ends_on"])),
                    name=str(item.get("name", "")),
                )
            )
        except (KeyError, ValueError) as exc:
            raise RulesConfigError(f"{where}[{index}]: needs starts_on and ends_on as YYYY-MM-DD ({exc})") from exc
    return periods
