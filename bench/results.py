"""Printing figures as a table and merging them into a JSON file (figure name to number), run after run."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def report(figures: Mapping[str, float], file_name: str) -> None:
    width = max((len(name) for name in figures), default=10)
    print(f"{'figure':<{width}}  value")
    for name, value in sorted(figures.items()):
        print(f"{name:<{width}}  {value:,.3f}")
    path = ROOT / file_name
    merged = json.loads(path.read_text()) if path.exists() else {}
    merged.update(figures)
    path.write_text(json.dumps(merged, indent=2, sort_keys=True) + "\n")
    print(f"written to {path.name}")
