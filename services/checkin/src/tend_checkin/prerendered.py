"""Pages rendered by Jinja once per process and filled in per request, for the check-in hot path.

The page a student sees after checking in differs between students only in a few values, yet rendering it through
Jinja on every check-in cost about a tenth of the request's CPU. A PrerenderedTemplate renders its template once,
with a marker in place of each value, and afterwards joins the fixed parts with the HTML-escaped values: the same
page Jinja would give (a test compares them), still autoescaped, with the template the one source of its markup.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable, Mapping, Sequence

from markupsafe import escape

# NUL never occurs in a template and passes through Jinja's autoescaping unchanged, so it cannot be confused with
# anything the template itself contains.
_MARKER = re.compile("\x00([a-z_]+)\x00")

# Renders the named template with the given context: flask.render_template in the app.
Renderer = Callable[..., str]


def marker(slot: str) -> str:
    return f"\x00{slot}\x00"


class PrerenderedTemplate:
    """Thread-safe. `context` maps the template's variables to values, in which `marker(slot)` stands for a value
    given per request; the template is rendered on first use (inside a request, so `url_for` works)."""

    def __init__(self, render: Renderer, name: str, context: Mapping[str, object], slots: Sequence[str]) -> None:
        self._render = render
        self._name = name
        self._context = context
        self._slots = frozenset(slots)
        self._parts: tuple[tuple[str, ...], tuple[str, ...]] | None = None
        self._lock = threading.Lock()

    @property
    def is_ready(self) -> bool:
        """Rendered by Jinja already, so `render` needs no request context."""
        return self._parts is not None

    def render(self, **values: str) -> str:
        if values.keys() != self._slots:
            raise ValueError(f"{self._name} needs exactly {sorted(self._slots)}")
        texts, slots = self._parts or self._prepare()
        pieces = [texts[0]]
        for slot, text in zip(slots, texts[1:], strict=True):
            pieces.append(escape(values[slot]))
            pieces.append(text)
        return "".join(pieces)

    def _prepare(self) -> tuple[tuple[str, ...], tuple[str, ...]]:
        with self._lock:
            if self._parts is None:
                split = _MARKER.split(self._render(self._name, **self._context))
                texts, slots = tuple(split[0::2]), tuple(split[1::2])
                if set(slots) != self._slots:
                    raise ValueError(f"{self._name} does not show every one of {sorted(self._slots)}")
                self._parts = (texts, slots)
            return self._parts
