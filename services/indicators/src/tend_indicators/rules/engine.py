"""Evaluates every rule for every student of a population as of a day, with cohorts built once per module run."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping

from tend_indicators.activity import NO_MODULE_RUN, DailyActivity, ModuleRunInfo, RunHistory, StudentHistory
from tend_indicators.calendar import TermCalendar
from tend_indicators.cohort import Cohort, build_cohort
from tend_indicators.rules import low_engagement, missed_assignment, no_engagement, sudden_drop, visa_contact_points
from tend_indicators.rules.findings import Context, Finding
from tend_indicators.rules_config import RulesConfig, RuleSet


class Evaluator:
    """Rules for a population as of `as_of`. Findings for an earlier day (to check a flag's evidence still holds)
    use the same cohorts, whose weeks after that day are simply not looked at."""

    def __init__(
        self,
        config: RulesConfig,
        runs: Mapping[str, ModuleRunInfo],
        students: Mapping[str, StudentHistory],
        as_of: int,
        minimum_cohort_size: int = 10,
    ) -> None:
        self._config = config
        self._runs = runs
        self._students = students
        self.as_of = as_of
        self._minimum = minimum_cohort_size
        self._calendars: dict[str, TermCalendar] = {}
        self._rule_sets: dict[tuple[str, str | None], RuleSet] = {}
        self._contexts: dict[tuple[str, str | None], Context] = {}
        self._activity: dict[str, DailyActivity] = {}
        self._members: dict[str, list[RunHistory]] = defaultdict(list)
        for student in students.values():
            for module_run_id, history in student.runs.items():
                if module_run_id != NO_MODULE_RUN:
                    self._members[module_run_id].append(history)
        self._cohorts = {module_run_id: self._cohort(module_run_id) for module_run_id in self._members}
        self._inactive_counts: dict[str, tuple[int, int]] = {}
        self._inactive_counts = self._count_inactive()
        # Contexts built while counting carry no counts; they are built again on first use.
        self._contexts.clear()

    def calendar(self, institution: str) -> TermCalendar:
        calendar = self._calendars.get(institution)
        if calendar is None:
            calendar = self._calendars[institution] = self._config.calendar(institution)
        return calendar

    def run_info(self, module_run_id: str, institution: str) -> ModuleRunInfo:
        info = self._runs.get(module_run_id)
        return info if info is not None else ModuleRunInfo(module_run_id, institution)

    def run_calendar(self, module_run_id: str) -> tuple[ModuleRunInfo, TermCalendar, int]:
        """The module run, its institution's calendar, and the first day its weeks are counted from."""
        members = self._members.get(module_run_id, [])
        institution = self.run_info(module_run_id, "").institution or self._any_institution(module_run_id)
        run = self.run_info(module_run_id, institution)
        calendar = self.calendar(institution)
        first_day = run.starts_on if run.starts_on is not None else calendar.term_start_before(self.as_of)
        if first_day is None:
            starts = [m.activity.first_active() for m in members]
            first_day = min((s for s in starts if s is not None), default=self.as_of)
        return run, calendar, first_day

    def _cohort(self, module_run_id: str) -> Cohort:
        run, calendar, first_day = self.run_calendar(module_run_id)
        return build_cohort(run, self._members[module_run_id], calendar, first_day, self.as_of, self._minimum)

    @property
    def module_run_ids(self) -> list[str]:
        return sorted(self._members)

    def _any_institution(self, module_run_id: str) -> str:
        for student in self._students.values():
            if module_run_id in student.runs:
                return student.institution
        return ""

    def context(self, student: StudentHistory) -> Context:
        programme = student.programme
        if programme is None:
            programmes = {info.programme for r in student.runs if (info := self._runs.get(r)) and info.programme}
            programme = next(iter(programmes)) if len(programmes) == 1 else None
        key = (student.institution, programme)
        context = self._contexts.get(key)
        if context is None:
            rules = self._rule_sets.get(key) or self._config.rules(student.institution, programme)
            self._rule_sets[key] = rules
            context = self._contexts[key] = Context(
                calendar=self.calendar(student.institution),
                rules=rules,
                runs=self._runs,
                cohorts=self._cohorts,
                inactive_counts=self._inactive_counts,
                members=self._members,
                minimum_cohort_size=self._minimum,
            )
        return context

    def activity(self, student: StudentHistory) -> DailyActivity:
        activity = self._activity.get(student.pseudonym)
        if activity is None:
            activity = self._activity[student.pseudonym] = student.combined_activity()
        return activity

    def _count_inactive(self) -> dict[str, tuple[int, int]]:
        counts: dict[str, list[int]] = defaultdict(lambda: [0, 0])
        for student in self._students.values():
            context = self.context(student)
            registered = [r.module_run_id for r in student.registered_runs(self.as_of)]
            if not registered:
                continue
            days, _first = no_engagement.inactive_days(student, self.activity(student), context, self.as_of)
            inactive = days >= context.rules.no_engagement.days
            for module_run_id in registered:
                counts[module_run_id][0] += inactive
                counts[module_run_id][1] += 1
        return {module_run_id: (pair[0], pair[1]) for module_run_id, pair in counts.items()}

    def findings(self, student: StudentHistory, as_of: int | None = None) -> list[Finding]:
        day = self.as_of if as_of is None else as_of
        context = self.context(student)
        found = no_engagement.evaluate(student, self.activity(student), context, day)
        found += visa_contact_points.evaluate(student, context, day)
        for module_run_id, history in student.runs.items():
            if module_run_id == NO_MODULE_RUN:
                continue
            run = self.run_info(module_run_id, student.institution)
            cohort = self._cohorts[module_run_id]
            found += missed_assignment.evaluate(history, run, context, day, self._members[module_run_id])
            found += low_engagement.evaluate(student, history, run, cohort, context, day)
            found += sudden_drop.evaluate(student, history, run, cohort, context, day)
        return found

    def cohort(self, module_run_id: str) -> Cohort | None:
        return self._cohorts.get(module_run_id)
