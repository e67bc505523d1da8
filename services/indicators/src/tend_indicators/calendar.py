"""The term calendar: which days count towards engagement rules (term days outside breaks), and term weeks.

Days are ISO calendar days in the institution's time zone; rules work on their ordinals (`date.toordinal()`), which
are small integers and cheap to compare and store by the hundred thousand.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

# A week counts for weekly rules when at least this many of its days are term days outside a break.
MIN_COUNTED_DAYS_IN_WEEK = 4


@dataclass(frozen=True)
class Period:
    """A closed range of days, for example a term or a break."""

    starts_on: date
    ends_on: date
    name: str = ""

    def __post_init__(self) -> None:
        if self.ends_on < self.starts_on:
            raise ValueError(f"period {self.name or self.starts_on} ends before it starts")

    def contains(self, day: date) -> bool:
        return self.starts_on <= day <= self.ends_on


class TermCalendar:
    """Terms and breaks. With no terms every day is a term day (a deployment that has not set its calendar yet)."""

    def __init__(self, terms: tuple[Period, ...] = (), breaks: tuple[Period, ...] = ()) -> None:
        self.terms = terms
        self.breaks = breaks
        # Counted days before each ordinal from _base on, extended as rules ask about later or earlier days.
        self._base = 0
        self._prefix: list[int] = [0]

    def __eq__(self, other: object) -> bool:
        return isinstance(other, TermCalendar) and (self.terms, self.breaks) == (other.terms, other.breaks)

    def __hash__(self) -> int:
        return hash((self.terms, self.breaks))

    def counts(self, ordinal: int) -> bool:
        """Whether the day counts towards engagement rules: in a term and not in a break."""
        return self.count_between(ordinal, ordinal) == 1

    def _counts_uncached(self, ordinal: int) -> bool:
        day = date.fromordinal(ordinal)
        in_term = not self.terms or any(term.contains(day) for term in self.terms)
        return in_term and not self.in_break(day)

    def count_between(self, first: int, last: int) -> int:
        """How many days first..last (inclusive) count; 0 when last < first."""
        if last < first:
            return 0
        self._cover(first, last + 1)
        return self._prefix[last + 1 - self._base] - self._prefix[first - self._base]

    def _cover(self, first: int, end: int) -> None:
        if len(self._prefix) == 1:
            self._base = first
        if first < self._base:
            earlier = [0]
            for ordinal in range(first, self._base):
                earlier.append(earlier[-1] + self._counts_uncached(ordinal))
            shift = earlier[-1]
            self._prefix = earlier[:-1] + [value + shift for value in self._prefix]
            self._base = first
        while self._base + len(self._prefix) - 1 < end:
            ordinal = self._base + len(self._prefix) - 1
            self._prefix.append(self._prefix[-1] + self._counts_uncached(ordinal))

    def in_break(self, day: date) -> bool:
        return any(period.contains(day) for period in self.breaks)

    def break_names_between(self, first: int, last: int) -> list[str]:
        """Names of the breaks overlapping the days first..last (ordinals), in date order."""
        start, end = date.fromordinal(first), date.fromordinal(last)
        return [p.name or "a break" for p in sorted(self.breaks, key=lambda p: p.starts_on) if _overlaps(p, start, end)]

    def term_start_before(self, ordinal: int) -> int | None:
        """The first day of the term containing the day, or of the latest term before it; None without terms."""
        day = date.fromordinal(ordinal)
        starts = [term.starts_on for term in self.terms if term.starts_on <= day]
        return max(starts).toordinal() if starts else None

    def counted_days_in_week(self, monday: int) -> int:
        return self.count_between(monday, monday + 6)

    def counted_week(self, monday: int) -> bool:
        return self.counted_days_in_week(monday) >= MIN_COUNTED_DAYS_IN_WEEK


def _overlaps(period: Period, start: date, end: date) -> bool:
    return period.starts_on <= end and start <= period.ends_on


def monday_of(ordinal: int) -> int:
    """The Monday of the ISO week containing the day."""
    return ordinal - date.fromordinal(ordinal).weekday()


def completed_mondays(first: int, as_of: int) -> list[int]:
    """Mondays of the weeks that start on or after the week of `first` and end (Sunday) on or before `as_of`."""
    mondays = []
    monday = monday_of(first)
    while monday + 6 <= as_of:
        mondays.append(monday)
        monday += 7
    return mondays


def iso(ordinal: int) -> str:
    return date.fromordinal(ordinal).isoformat()


def readable(ordinal: int) -> str:
    """A day as people write it, for example "3 Mar 2026"."""
    day = date.fromordinal(ordinal)
    return f"{day.day} {day.strftime('%b')} {day.year}"
