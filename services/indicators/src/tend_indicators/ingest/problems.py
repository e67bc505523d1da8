"""Why input was refused: each problem names the record (its position and, when it has one, its id) and the rule
it broke. Problem texts never repeat a field's value, which may be personal data."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Problem:
    # Where: "statement 3", "line 17", "event 0", ...
    where: str
    # The record's own id when it has one that is safe to repeat (a statement id), else "".
    record_id: str
    # What is wrong, for example "verb.id is not an IRI".
    rule: str

    def __str__(self) -> str:
        named = f" ({self.record_id})" if self.record_id else ""
        return f"{self.where}{named}: {self.rule}"

    def as_json(self) -> dict[str, str]:
        return {"where": self.where, "id": self.record_id, "rule": self.rule}


class RejectedInput(Exception):
    """The whole batch or file is refused; nothing of it was stored."""

    def __init__(self, problems: Sequence[Problem], status: int = 400) -> None:
        super().__init__("; ".join(str(p) for p in problems[:20]))
        self.problems = list(problems)
        self.status = status
