"""`make eval`: quality evaluations on real data, printed and merged into eval-results.json.

None is defined yet: the first, indicators' replay of the OULAD presentation, arrives with the indicator rules.
"""

from __future__ import annotations

from collections.abc import Callable

from bench.results import report

EVALUATIONS: dict[str, Callable[[], dict[str, float]]] = {}


def main() -> None:
    figures: dict[str, float] = {}
    for name, evaluation in EVALUATIONS.items():
        print(f"running {name}...", flush=True)
        figures.update(evaluation())
    if not figures:
        print("no quality evaluations are defined yet")
    report(figures, "eval-results.json")


if __name__ == "__main__":
    main()
