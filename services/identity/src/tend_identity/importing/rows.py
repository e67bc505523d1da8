"""Reading a CSV file into numbered rows, and collecting what is wrong with them."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

# A student records export is small; a file this size is a mistake, not an export.
MAX_BYTES = 50 * 1024 * 1024


@dataclass(frozen=True, order=True)
class Problem:
    """Something wrong with one line of the file (line 1 is the header). The message names the column and what is
    wrong, never the value, so that it can be shown and logged without carrying personal data."""

    line: int
    message: str

    def __str__(self) -> str:
        return f"line {self.line}: {self.message}"


class ImportRejected(Exception):
    """The file was not applied, for the problems listed."""

    def __init__(self, problems: Sequence[Problem]) -> None:
        self.problems = sorted(problems)
        super().__init__("; ".join(str(problem) for problem in self.problems[:20]))


@dataclass(frozen=True)
class Row:
    line: int
    values: dict[str, str]

    def get(self, column: str) -> str:
        return self.values.get(column, "").strip()


@dataclass
class Problems:
    found: list[Problem] = field(default_factory=list)

    def add(self, line: int, message: str) -> None:
        self.found.append(Problem(line, message))

    def raise_if_any(self) -> None:
        if self.found:
            raise ImportRejected(self.found)


def read_rows(
    data: bytes,
    required: Sequence[str],
    optional: Sequence[str] = (),
    extra_allowed: bool = False,
    problems: Problems | None = None,
) -> list[Row]:
    """The rows of a CSV file whose header has every `required` column, and no column outside `required` and
    `optional` unless `extra_allowed` (for files that carry fields Tend must not keep: those are never read, and
    never leave this function). A header problem is raised at once; a malformed row is added to `problems` (raised
    here when none is given) and left out, so that the caller can report it with the other rows' problems."""
    if len(data) > MAX_BYTES:
        raise ImportRejected([Problem(1, f"the file is larger than {MAX_BYTES // (1024 * 1024)} MB")])
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise ImportRejected([Problem(1, "the file is not UTF-8 text")]) from None
    reader = csv.DictReader(io.StringIO(text, newline=""))
    header = [name.strip() for name in reader.fieldnames or []]
    reader.fieldnames = header
    header_problems = Problems()
    missing = [name for name in required if name not in header]
    if missing:
        header_problems.add(1, "missing column(s): " + ", ".join(missing))
    unknown = [name for name in header if name not in required and name not in optional]
    if unknown and not extra_allowed:
        header_problems.add(1, "unknown column(s): " + ", ".join(unknown))
    if len(set(header)) != len(header):
        header_problems.add(1, "a column is named twice")
    header_problems.raise_if_any()
    row_problems = problems if problems is not None else Problems()
    wanted = set(required) | set(optional)
    rows = [
        Row(line, {key: value for key, value in values.items() if key in wanted})
        for line, values in _records(reader, row_problems)
    ]
    if not rows and not row_problems.found:
        raise ImportRejected([Problem(1, "the file has a header and no rows")])
    if problems is None:
        row_problems.raise_if_any()
    return rows


def _records(reader: csv.DictReader[str], problems: Problems) -> Iterator[tuple[int, dict[str, str]]]:
    try:
        for values in reader:
            if None in values:
                problems.add(reader.line_num, "more fields than the header has columns")
                continue
            if any(value is None for value in values.values()):
                problems.add(reader.line_num, "fewer fields than the header has columns")
                continue
            if not any(value.strip() for value in values.values()):
                continue  # a blank line
            yield reader.line_num, values
    except csv.Error as exc:
        problems.add(reader.line_num, f"not valid CSV ({exc})")
