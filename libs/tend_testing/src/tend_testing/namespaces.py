"""Names that keep one test's broker objects apart from every other's."""

from __future__ import annotations

import uuid

# Every test namespace starts with this, so that test objects are never mistaken for a real suite's.
NAMESPACE_PREFIX = "tt"

# The namespaces this process handed out: only their queues and exchanges are removed after the run, since other
# test processes (xdist workers, another developer's run) may be using theirs at the same moment.
issued: set[str] = set()


def new_amqp_namespace() -> str:
    namespace = f"{NAMESPACE_PREFIX}{uuid.uuid4().hex[:12]}"
    issued.add(namespace)
    return namespace


def issued_here(name: str) -> bool:
    """Whether a queue or exchange name belongs to a namespace this process issued."""
    return name.split(".", 1)[0] in issued
