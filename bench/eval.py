"""`make eval`: quality evaluations on real data, printed and merged into eval-results.json.

- indicators: the OULAD presentation AAA 2013J replayed day by day through the real ingest and rules, the default rule
  set beside a naive "no click for 14 days" rule (bench/indicators_eval.py).
"""

from __future__ import annotations

from collections.abc import Callable

from bench import indicators_eval
from bench.results import report

EVALUATIONS: dict[str, Callable[[], dict[str, float]]] = {"indicators": indicators_eval.evaluate}


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
