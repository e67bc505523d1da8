"""`make bench`: runs the benchmarks (all, or those named), prints a table and merges bench-results.json.

Each figure is the median of several runs in one process; compare figures from the same run, since this machine
is shared and noisy.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable

from bench import messaging
from bench.environment import BenchEnvironment, bench_environment
from bench.results import report

BENCHMARKS: dict[str, Callable[[BenchEnvironment], dict[str, float]]] = {
    "messaging": messaging.run,
}


def main() -> None:
    parser = argparse.ArgumentParser(prog="bench")
    parser.add_argument("names", nargs="*", help="benchmarks to run (default: all)")
    args = parser.parse_args()
    figures: dict[str, float] = {}
    with bench_environment() as environment:
        for name in args.names or list(BENCHMARKS):
            print(f"running {name}...", flush=True)
            figures.update(BENCHMARKS[name](environment))
    report(figures, "bench-results.json")


if __name__ == "__main__":
    main()
