"""`make bench`: runs the benchmarks (all, or those named), prints a table and merges bench-results.json.

Each figure is the median of several runs in one process; compare figures from the same run, since this machine
is shared and noisy.
"""

from __future__ import annotations

import argparse
import importlib
import pkgutil
from collections.abc import Callable

import bench
from bench.environment import BenchEnvironment, bench_environment
from bench.results import report

Benchmark = Callable[[BenchEnvironment], dict[str, float]]
_NOT_BENCHMARKS = {"__main__", "environment", "results", "eval"}


def discover() -> dict[str, Benchmark]:
    """Every module in bench/ with a `run(environment)` function is a benchmark, named after the module."""
    found: dict[str, Benchmark] = {}
    for module in pkgutil.iter_modules(bench.__path__):
        if module.name in _NOT_BENCHMARKS or module.name.startswith("_"):
            continue
        run = getattr(importlib.import_module(f"bench.{module.name}"), "run", None)
        if callable(run):
            found[module.name] = run
    return found


def main() -> None:
    benchmarks = discover()
    parser = argparse.ArgumentParser(prog="bench")
    parser.add_argument("names", nargs="*", help="benchmarks to run (default: all)")
    args = parser.parse_args()
    figures: dict[str, float] = {}
    with bench_environment() as environment:
        for name in args.names or list(benchmarks):
            print(f"running {name}...", flush=True)
            figures.update(benchmarks[name](environment))
    report(figures, "bench-results.json")


if __name__ == "__main__":
    main()
