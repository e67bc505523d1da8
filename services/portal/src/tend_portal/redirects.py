"""Which addresses the portal will send a browser on to: never an open redirect."""

from __future__ import annotations

import re
from urllib.parse import urlsplit

# Control characters, spaces and backslashes: browsers "repair" these in ways that can turn a path into a host.
_UNSAFE_CHARACTERS = re.compile(r"[\x00-\x20\x7f\\]")
_MAX_LENGTH = 2000


def local_path(candidate: str | None, default: str = "/") -> str:
    """`candidate` when it is a path on this site (such as "/sessions/new?x=1"), otherwise `default`."""
    if not candidate or len(candidate) > _MAX_LENGTH or _UNSAFE_CHARACTERS.search(candidate):
        return default
    if not candidate.startswith("/") or candidate.startswith("//"):
        return default
    parts = urlsplit(candidate)
    if parts.scheme or parts.netloc:
        return default
    return candidate


def is_checkin_page(candidate: str | None, checkin_base_url: str) -> bool:
    """Whether `candidate` is a check-in page ("<checkin_base_url>/c/...") on the institution's check-in host."""
    if not candidate or len(candidate) > _MAX_LENGTH or _UNSAFE_CHARACTERS.search(candidate):
        return False
    if not candidate.startswith(f"{checkin_base_url}/c/"):
        return False
    # The prefix test alone would accept a different host spelled to share it; compare the parsed parts too.
    parts, base = urlsplit(candidate), urlsplit(checkin_base_url)
    return (
        parts.scheme == base.scheme
        and parts.netloc == base.netloc
        and parts.path.startswith("/c/")
        and "/../" not in parts.path
        and not parts.path.endswith("/..")
    )
