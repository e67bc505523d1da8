"""Fails, with the command that starts it, if PostgreSQL, Redis or RabbitMQ does not answer on its standard port."""

from __future__ import annotations

import sys

from tend_testing.backends import BackendMissing, find_backends


def main() -> int:
    try:
        find_backends()
    except BackendMissing as exc:
        print(exc, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
