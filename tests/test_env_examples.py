"""Every service's .env.example lists exactly the variables its settings read, so a deployment sees them all."""

from __future__ import annotations

import dataclasses
import importlib
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SERVICES = ("identity", "checkin", "indicators", "notify", "audit", "portal")


@pytest.mark.parametrize("service", SERVICES)
def test_env_example_lists_every_setting(service: str) -> None:
    settings_class = importlib.import_module(f"tend_{service}.settings").Settings
    expected = {f"TEND_{service.upper()}_{field.name.upper()}" for field in dataclasses.fields(settings_class)}
    example = (ROOT / "services" / service / ".env.example").read_text()
    listed = set(re.findall(r"^#?\s*(TEND_[A-Z0-9_]+)=", example, flags=re.MULTILINE))
    assert listed == expected
