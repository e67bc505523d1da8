"""Privacy canary checks: find any demo person's unique canary values where they must never be."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import psycopg
import redis
from psycopg import sql


def find_in_text(text: str, canaries: Iterable[str], where: str) -> list[str]:
    lowered = text.lower()
    return [f"{where}: {canary!r}" for canary in canaries if canary.lower() in lowered]


def find_in_database(dsn: str, canaries: Sequence[str]) -> list[str]:
    """Every table in the public schema, every row, as text."""
    hits: list[str] = []
    with psycopg.connect(dsn) as conn:
        tables = [
            row[0]
            for row in conn.execute(
                "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public'"
                " AND table_type = 'BASE TABLE'"
            )
        ]
        for table in tables:
            query = sql.SQL("SELECT row_to_json(t)::text FROM {} AS t").format(sql.Identifier(table))
            for (row,) in conn.execute(query):
                hits.extend(find_in_text(str(row), canaries, f"table {table}"))
    return hits


def find_in_redis(url: str, prefix: str, canaries: Sequence[str]) -> list[str]:
    """Every key under the prefix, its name and its value whatever its type."""
    client = redis.Redis.from_url(url)
    hits: list[str] = []
    try:
        for key in client.scan_iter(match=f"{prefix}*", count=1000):
            hits.extend(find_in_text(_text(key), canaries, "redis key"))
            kind = _text(client.type(key))
            if kind == "string":
                value = repr(client.get(key))
            elif kind == "hash":
                value = repr(client.hgetall(key))
            elif kind in {"list"}:
                value = repr(client.lrange(key, 0, -1))
            elif kind == "set":
                value = repr(client.smembers(key))
            elif kind == "zset":
                value = repr(client.zrange(key, 0, -1, withscores=True))
            else:
                value = repr(client.dump(key))
            hits.extend(find_in_text(value, canaries, f"redis value of {key!r}"))
    finally:
        client.close()
    return hits


def _text(value: bytes | str) -> str:
    return value.decode(errors="replace") if isinstance(value, bytes) else value


def find_in_bytes(payloads: Iterable[bytes], canaries: Sequence[str], where: str) -> list[str]:
    hits: list[str] = []
    for payload in payloads:
        hits.extend(find_in_text(payload.decode("utf-8", errors="replace"), canaries, where))
    return hits
