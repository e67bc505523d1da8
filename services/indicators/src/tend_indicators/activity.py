"""What the rules read about students: daily activity per module run, registrations, submissions and attendance.

Built by history_store from the database (or by tests from constructed histories); nothing here touches the
database. Days are ordinals (`date.toordinal()`) in the institution's time zone.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable
from dataclasses import dataclass, field

# The sources activity comes from. A rule may count only some of them as engagement.
SOURCES = ("vle", "attendance", "assignment", "meeting", "recording", "library", "printing", "other")
SOURCE_BITS = {name: 1 << index for index, name in enumerate(SOURCES)}
ALL_SOURCES = (1 << len(SOURCES)) - 1

# The module run id of activity that belongs to no module run (library, printing).
NO_MODULE_RUN = ""


def source_mask(sources: Iterable[str]) -> int:
    """The bit mask of the named sources; no names means every source."""
    names = list(sources)
    if not names:
        return ALL_SOURCES
    mask = 0
    for name in names:
        mask |= SOURCE_BITS.get(name, SOURCE_BITS["other"])
    return mask


@dataclass
class DailyActivity:
    """Activity per day as parallel arrays sorted by day: the amount (clicks, visits, sessions) and the sources."""

    days: list[int] = field(default_factory=list)
    amounts: list[int] = field(default_factory=list)
    masks: list[int] = field(default_factory=list)

    def add(self, day: int, amount: int, mask: int) -> None:
        """Adds activity; appending in day order is the fast path, anything else is inserted in place."""
        if not self.days or day > self.days[-1]:
            self.days.append(day)
            self.amounts.append(amount)
            self.masks.append(mask)
            return
        index = bisect.bisect_left(self.days, day)
        if index < len(self.days) and self.days[index] == day:
            self.amounts[index] += amount
            self.masks[index] |= mask
        else:
            self.days.insert(index, day)
            self.amounts.insert(index, amount)
            self.masks.insert(index, mask)

    def last_active_on_or_before(self, day: int, mask: int = ALL_SOURCES) -> int | None:
        index = bisect.bisect_right(self.days, day) - 1
        while index >= 0:
            if self.masks[index] & mask:
                return self.days[index]
            index -= 1
        return None

    def first_active(self) -> int | None:
        return self.days[0] if self.days else None

    def amount_between(self, first: int, last: int) -> int:
        """Total amount on days first..last inclusive."""
        lo = bisect.bisect_left(self.days, first)
        hi = bisect.bisect_right(self.days, last)
        return sum(self.amounts[lo:hi])

    def active_between(self, first: int, last: int, mask: int = ALL_SOURCES) -> bool:
        lo = bisect.bisect_left(self.days, first)
        hi = bisect.bisect_right(self.days, last)
        return any(m & mask for m in self.masks[lo:hi])

    def active_days_between(self, first: int, last: int) -> int:
        return bisect.bisect_right(self.days, last) - bisect.bisect_left(self.days, first)

    @staticmethod
    def merged(parts: Iterable[DailyActivity]) -> DailyActivity:
        combined: dict[int, tuple[int, int]] = {}
        for part in parts:
            for day, amount, mask in zip(part.days, part.amounts, part.masks, strict=True):
                old_amount, old_mask = combined.get(day, (0, 0))
                combined[day] = (old_amount + amount, old_mask | mask)
        result = DailyActivity()
        for day in sorted(combined):
            amount, mask = combined[day]
            result.days.append(day)
            result.amounts.append(amount)
            result.masks.append(mask)
        return result


@dataclass
class RunHistory:
    """One student on one module run."""

    module_run_id: str
    activity: DailyActivity = field(default_factory=DailyActivity)
    registered_on: int | None = None
    # The first day the student was no longer registered; None while registered.
    unregistered_on: int | None = None
    # Assignment id -> day of the first submission.
    submissions: dict[str, int] = field(default_factory=dict)
    # Teaching sessions attended.
    attended: set[str] = field(default_factory=set)
    # Weekly totals by Monday, filled as rules ask for them (the data does not change while rules run).
    _weeks: dict[int, int] = field(default_factory=dict, repr=False)

    def week_amount(self, monday: int) -> int:
        amount = self._weeks.get(monday)
        if amount is None:
            amount = self._weeks[monday] = self.activity.amount_between(monday, monday + 6)
        return amount

    def registered_during(self, day: int) -> bool:
        if self.registered_on is not None and day < self.registered_on:
            return False
        return self.unregistered_on is None or day < self.unregistered_on


@dataclass
class StudentHistory:
    """Everything the rules read about one student."""

    pseudonym: str
    institution: str
    programme: str | None = None
    sponsored_visa: bool = False
    runs: dict[str, RunHistory] = field(default_factory=dict)

    def run(self, module_run_id: str) -> RunHistory:
        history = self.runs.get(module_run_id)
        if history is None:
            history = self.runs[module_run_id] = RunHistory(module_run_id)
        return history

    def registered_runs(self, day: int) -> list[RunHistory]:
        return [r for r in self.runs.values() if r.module_run_id != NO_MODULE_RUN and r.registered_during(day)]

    def combined_activity(self) -> DailyActivity:
        if len(self.runs) == 1:
            return next(iter(self.runs.values())).activity
        return DailyActivity.merged(run.activity for run in self.runs.values())


@dataclass(frozen=True)
class Assignment:
    assignment_id: str
    due_on: int
    # What a person calls it ("Coursework 1"), when the reference data gives it.
    title: str | None = None


@dataclass(frozen=True)
class ExpectedSession:
    """An expected contact point: a teaching session of a module run."""

    session_id: str
    day: int
    # Seconds since the epoch, to order sessions held on the same day.
    starts_at: float


@dataclass
class ModuleRunInfo:
    """A module run as the rules see it."""

    module_run_id: str
    institution: str
    programme: str | None = None
    starts_on: int | None = None
    ends_on: int | None = None
    assignments: list[Assignment] = field(default_factory=list)
    sessions: list[ExpectedSession] = field(default_factory=list)
    # What a person calls it ("CS101 Programming, 2026/27"), when the reference data gives it.
    label: str | None = None
