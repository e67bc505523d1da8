"""Mapping a batch's student identifiers to pseudonyms, one call to identity per identifier kind."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable

from tend_indicators.directory import Directory, IdentifierKind


def map_identifiers(
    directory: Directory, wanted: Iterable[tuple[IdentifierKind, str]]
) -> dict[tuple[IdentifierKind, str], str]:
    """(kind, identifier) -> pseudonym for those identity knows as students. Raises DirectoryUnavailable."""
    by_kind: dict[IdentifierKind, list[str]] = defaultdict(list)
    for kind, identifier in wanted:
        by_kind[kind].append(identifier)
    found: dict[tuple[IdentifierKind, str], str] = {}
    for kind, identifiers in by_kind.items():
        for identifier, pseudonym in directory.map_to_pseudonyms(kind, identifiers).items():
            found[(kind, identifier)] = pseudonym
    return found
