"""Dijk's own tables beside the audit log: connecting to SQLite or PostgreSQL, once.

The privacy tables and the API inventory live in the audit database (``audit.url``). Both
open it the same way: SQLite with a busy timeout and WAL (creating the file's directory
only when asked to create), PostgreSQL with the tables created under a transaction-scoped
advisory lock so that gateways starting together do not race. Errors carry a message for
users, as the caller's own exception type; the URL is never shown with its password.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Sequence
from typing import Any

__all__ = ["connect_postgres", "connect_sqlite", "dollar"]


def _make_parent(path: str) -> None:
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)


async def connect_sqlite(
    path: str,
    redacted: str,
    schema: Sequence[str],
    *,
    create: bool,
    error: type[Exception],
    autocommit: bool = False,
) -> Any:
    """An aiosqlite connection; with ``create`` the file and ``schema`` are made first."""
    import aiosqlite

    if path != ":memory:":
        exists = await asyncio.to_thread(os.path.isfile, path)
        if not create and not exists:
            raise error(f"no database at {redacted}")
        if create and not exists:
            await asyncio.to_thread(_make_parent, path)
    try:
        if autocommit:
            connection = await aiosqlite.connect(path, timeout=10, isolation_level=None)
        else:
            connection = await aiosqlite.connect(path, timeout=10)
        await connection.execute("PRAGMA busy_timeout = 10000")
        if create:
            await _wal(connection)
            for statement in schema:
                await connection.execute(statement)
            await connection.commit()
    except (OSError, aiosqlite.Error) as exc:
        raise error(f"cannot open {redacted}: {type(exc).__name__}: {exc}") from None
    return connection


async def _wal(connection: Any) -> None:
    """Switch the file to WAL. Two processes opening a new file at once race for it, and
    SQLite answers the loser "database is locked" at once instead of waiting for its busy
    timeout: read the mode first and retry briefly, within the same 10 s bound."""
    deadline = time.monotonic() + 10
    while True:
        cursor = await connection.execute("PRAGMA journal_mode")
        row = await cursor.fetchone()
        if row is not None and str(row[0]).lower() == "wal":
            return
        try:
            await connection.execute("PRAGMA journal_mode = WAL")
            return
        except Exception as exc:  # aiosqlite.OperationalError, imported lazily above
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.05)


async def connect_postgres(
    dsn: str,
    redacted: str,
    schema: Sequence[str],
    *,
    create: bool,
    error: type[Exception],
    lock_key: int,
) -> Any:
    """An asyncpg connection; with ``create`` the ``schema`` is made under an advisory lock."""
    import asyncpg

    try:
        connection = await asyncpg.connect(dsn, timeout=10)
    except (OSError, asyncpg.PostgresError, TimeoutError) as exc:
        raise error(f"cannot connect to {redacted}: {type(exc).__name__}") from None
    try:
        if create:
            async with connection.transaction():
                # One creator at a time when several gateways start together.
                await connection.execute("SELECT pg_advisory_xact_lock($1)", lock_key)
                for statement in schema:
                    await connection.execute(statement)
    except BaseException:
        await connection.close()
        raise
    return connection


def dollar(sql: str) -> str:
    """``?`` placeholders as PostgreSQL's ``$1, $2, ...`` (no literal ``?`` in our SQL)."""
    parts = sql.split("?")
    out = [parts[0]]
    for index, part in enumerate(parts[1:], start=1):
        out.append(f"${index}{part}")
    return "".join(out)
