"""The inventory in the audit database: one row per endpoint, merged by every gateway.

Beside the audit log and the data map (``audit.url``: ``sqlite:///...`` or
``postgresql://...``), Dijk's own tables:

``<prefix>discovery``       method, template, route, count, first/last seen (µs, UTC), and
                            ``data``: the endpoint as JSON (shapes and counters, no value;
                            see :mod:`dijk.discovery.inventory`)
``<prefix>discovery_meta``  counters: endpoints evicted from memory before a flush

A flush is one transaction that reads the rows it touches, merges in Python (shapes add
up, counts add, first/last widen) and writes them back. Gateways flushing together take
turns: SQLite's write lock (``BEGIN IMMEDIATE``), a transaction-scoped advisory lock in
PostgreSQL. Reading folds templates learnt by different gateways (``/posts/{}`` beside
``/posts/my-first-post``) into one.
"""

# S608: table names come from a validated prefix ([a-z_][a-z0-9_]*); values are bound.
# ruff: noqa: S608
from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any, Final

import orjson

from dijk.audit.store import parse_store_url
from dijk.discovery.inventory import Endpoint, merge_endpoint
from dijk.tables import connect_postgres, connect_sqlite, dollar

__all__ = ["DiscoveryDatabase", "DiscoveryDatabaseError", "open_discovery_db"]

_PREFIX: Final = re.compile(r"[a-z_][a-z0-9_]{0,23}")
_LOCK_KEY: Final = 727_274


class DiscoveryDatabaseError(Exception):
    """The database cannot be reached or holds no inventory; the message is for users."""


def _schema(prefix: str) -> list[str]:
    return [
        f"""CREATE TABLE IF NOT EXISTS {prefix}discovery (
            method TEXT NOT NULL, template TEXT NOT NULL, route TEXT NOT NULL,
            count BIGINT NOT NULL, first_seen_us BIGINT NOT NULL, last_seen_us BIGINT NOT NULL,
            data TEXT NOT NULL, PRIMARY KEY (method, template))""",
        f"""CREATE TABLE IF NOT EXISTS {prefix}discovery_meta (
            name TEXT PRIMARY KEY, value BIGINT NOT NULL)""",
    ]


class DiscoveryDatabase:
    """The inventory tables behind a URL; ``async with`` or connect/close."""

    def __init__(self, url: str, prefix: str = "dijk_", max_places: int = 1 << 30) -> None:
        if not _PREFIX.fullmatch(prefix):
            raise DiscoveryDatabaseError(f"bad table prefix {prefix!r}")
        try:
            parsed = parse_store_url(url)
        except Exception as exc:  # AuditURLError: its message is for users
            raise DiscoveryDatabaseError(str(exc)) from None
        self.dialect = parsed.scheme
        self.target = parsed.target
        self.redacted = url if parsed.scheme == "sqlite" else parsed.redacted
        self.prefix = prefix
        self.max_places = max_places
        self._connection: Any = None
        table = f"{prefix}discovery"
        self._select = f"SELECT data FROM {table} WHERE method = ? AND template = ?"
        self._upsert = (
            f"INSERT INTO {table} (method, template, route, count, first_seen_us, last_seen_us,"
            " data) VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (method, template) DO UPDATE SET"
            " route = excluded.route, count = excluded.count,"
            " first_seen_us = excluded.first_seen_us, last_seen_us = excluded.last_seen_us,"
            " data = excluded.data"
        )
        self._meta = (
            f"INSERT INTO {prefix}discovery_meta (name, value) VALUES (?, ?) ON CONFLICT (name)"
            f" DO UPDATE SET value = {prefix}discovery_meta.value + excluded.value"
        )

    async def __aenter__(self) -> DiscoveryDatabase:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    def _sql(self, text: str) -> str:
        return text if self.dialect == "sqlite" else dollar(text)

    async def connect(self, *, create: bool) -> None:
        if self._connection is not None:
            return
        schema = _schema(self.prefix)
        error = DiscoveryDatabaseError
        if self.dialect == "sqlite":
            self._connection = await connect_sqlite(
                self.target, self.redacted, schema, create=create, error=error, autocommit=True
            )
        else:
            self._connection = await connect_postgres(
                self.target, self.redacted, schema, create=create, error=error, lock_key=_LOCK_KEY
            )

    async def close(self) -> None:
        if self._connection is not None:
            connection, self._connection = self._connection, None
            await connection.close()

    async def write(self, endpoints: Sequence[Endpoint], evicted: int = 0) -> None:
        """Merge endpoints into their rows, in one transaction."""
        connection = self._connection
        assert connection is not None
        if self.dialect == "sqlite":
            await connection.execute("BEGIN IMMEDIATE")
            try:
                await self._merge(endpoints, evicted)
                await connection.execute("COMMIT")
            except BaseException:
                await connection.execute("ROLLBACK")
                raise
            return
        async with connection.transaction():
            await connection.execute("SELECT pg_advisory_xact_lock($1)", _LOCK_KEY)
            await self._merge(endpoints, evicted)

    async def _merge(self, endpoints: Sequence[Endpoint], evicted: int) -> None:
        rows = []
        for endpoint in endpoints:
            key = (endpoint["method"], endpoint["template"])
            found = await self._fetch(self._select, key)
            merged = endpoint
            if found:
                merged = merge_endpoint(orjson.loads(found[0][0]), endpoint, self.max_places)
            rows.append(
                (
                    merged["method"],
                    merged["template"],
                    merged.get("route", ""),
                    merged["count"],
                    merged["first_us"],
                    merged["last_us"],
                    orjson.dumps(merged).decode(),
                )
            )
        await self._executemany(self._upsert, rows)
        if evicted:
            await self._executemany(self._meta, [("evicted", evicted)])

    async def _fetch(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        connection = self._connection
        assert connection is not None
        if self.dialect == "sqlite":
            async with connection.execute(sql, tuple(params)) as cursor:
                return [tuple(row) for row in await cursor.fetchall()]
        return [tuple(row) for row in await connection.fetch(self._sql(sql), *params)]

    async def _executemany(self, sql: str, rows: list[tuple[Any, ...]]) -> None:
        if rows:
            await self._connection.executemany(self._sql(sql), rows)

    async def load(self) -> tuple[list[Endpoint], dict[str, int]]:
        """Every endpoint stored (not yet folded) and the counters."""
        table = f"{self.prefix}discovery"
        if not await self._has_table(table):
            raise DiscoveryDatabaseError(
                f"no inventory in {self.redacted}: no route has discovery on, or nothing "
                "was flushed yet"
            )
        rows = await self._fetch(f"SELECT data FROM {table} ORDER BY template, method")
        meta = await self._fetch(f"SELECT name, value FROM {self.prefix}discovery_meta")
        return [orjson.loads(row[0]) for row in rows], {str(n): int(v) for n, v in meta}

    async def _has_table(self, name: str) -> bool:
        if self.dialect == "sqlite":
            sql = "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?"
            return bool(await self._fetch(sql, (name,)))
        rows = await self._fetch("SELECT to_regclass(?) IS NOT NULL", (name,))
        return bool(rows and rows[0][0])


def open_discovery_db(
    url: str, prefix: str = "dijk_", max_places: int = 1 << 30
) -> DiscoveryDatabase:
    """The inventory tables of the database at ``url`` (the audit URL); not yet connected."""
    return DiscoveryDatabase(url, prefix, max_places)
