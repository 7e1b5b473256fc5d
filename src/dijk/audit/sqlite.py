"""SQLite audit store (aiosqlite): the embedded default.

WAL journal, one connection, and one transaction per batch (group commit). Time is
stored as integer microseconds (``time_us``, exact, what the chain hashes) with a
generated, read-only ``time`` column in ISO 8601 for people using the ``sqlite3`` shell.

One writer per chain: :meth:`SQLiteAuditStore.claim` takes an exclusive ``flock`` on
``<database>.<table>.<chain>.lock`` beside the database (see ``lock.py``), held until
``close`` or the end of the process. WAL and ``busy_timeout`` let other connections, and
other processes, read (``dijk audit verify``/``export``/``query``), prune, and write other
chains meanwhile; only a second writer of the same chain is refused, at once.
"""

# S608: table names in these queries come from parse_store_url, which allows only
# [a-z_][a-z0-9_]*; every value is a bound parameter.
# ruff: noqa: S608
from __future__ import annotations

import asyncio
import os
import sqlite3
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any, Final

import aiosqlite

from dijk.audit.chain import ChainedRecord, Checkpoint
from dijk.audit.lock import LockFile, LockHeldError
from dijk.audit.record import datetime_from_us, datetime_to_us
from dijk.audit.store import (
    AuditPage,
    AuditQuery,
    AuditSinkError,
    AuditStore,
    AuditStoreNotFoundError,
    ChainInUseError,
    StoreURL,
    build_where,
    check_replayed,
    encode_cursor,
    stored_findings,
    stored_pii,
    stored_record,
)
from dijk.audit.summary import summary_queries

__all__ = ["SQLiteAuditStore"]

_COLUMNS: Final = (
    "chain, seq, time_us, request_id, method, route, path_template, status, decision, reason,"
    " consumer, auth_method, credential_id, client_ip, findings, gateway_latency_us,"
    " upstream_latency_us, bytes_in, bytes_out, pii_categories, prev_hash, hash"
)
_PLACEHOLDERS: Final = ", ".join("?" * 22)


def _row(sealed: ChainedRecord) -> tuple[Any, ...]:
    record = sealed.record
    return (
        sealed.chain,
        sealed.seq,
        record.time_us,
        record.request_id,
        record.method,
        record.route,
        record.path_template,
        record.status,
        record.decision,
        record.reason,
        record.consumer,
        record.auth_method,
        record.credential_id,
        record.client_ip,
        stored_findings(record),
        record.gateway_latency_us,
        record.upstream_latency_us,
        record.bytes_in,
        record.bytes_out,
        stored_pii(record),
        sealed.prev_hash,
        sealed.hash,
    )


def _sealed(row: Sequence[Any]) -> ChainedRecord:
    record = stored_record(
        time_us=row[2],
        request_id=row[3],
        method=row[4],
        route=row[5],
        path_template=row[6],
        status=row[7],
        decision=row[8],
        reason=row[9],
        consumer=row[10],
        auth_method=row[11],
        credential_id=row[12],
        client_ip=row[13],
        findings=row[14],
        gateway_latency_us=row[15],
        upstream_latency_us=row[16],
        bytes_in=row[17],
        bytes_out=row[18],
        pii_categories=row[19],
    )
    return ChainedRecord(row[0], row[1], bytes(row[20]), bytes(row[21]), record)


def _checkpoint(row: Sequence[Any]) -> Checkpoint:
    return Checkpoint(
        chain=row[0],
        seq=row[1],
        hash=bytes(row[2]),
        time=datetime_from_us(row[3]),
        kind=row[4],
        key_id=row[5],
        signature=bytes(row[6]),
    )


def _transaction(connection: sqlite3.Connection, statements: list[tuple[str, Any, bool]]) -> None:
    """Runs on the connection's thread: all statements, committed together or not at all."""
    connection.execute("BEGIN IMMEDIATE")
    try:
        for sql, params, many in statements:
            if many:
                connection.executemany(sql, params)
            else:
                connection.execute(sql, params)
        connection.execute("COMMIT")
    except BaseException:
        if connection.in_transaction:
            connection.execute("ROLLBACK")
        raise


class SQLiteAuditStore(AuditStore):
    def __init__(self, url: StoreURL, *, create: bool = False, durable: bool = True):
        self.url = url
        self._create = create
        self._durable = durable
        self._db: aiosqlite.Connection | None = None
        # One connection is shared by the writer and readers; a lock keeps one
        # coroutine's transaction from interleaving with another's statements.
        self._lock = asyncio.Lock()
        self._claimed: str | None = None
        self._writer_lock: LockFile | None = None
        table = url.table
        self._table = table
        self._checkpoints = f"{table}_checkpoint"
        self._insert = f"INSERT INTO {table} ({_COLUMNS}) VALUES ({_PLACEHOLDERS})"
        self._insert_ignore = f"INSERT OR IGNORE INTO {table} ({_COLUMNS}) VALUES ({_PLACEHOLDERS})"
        self._insert_checkpoint = (
            f"INSERT OR IGNORE INTO {self._checkpoints}"
            " (chain, seq, hash, time_us, kind, key_id, signature) VALUES (?, ?, ?, ?, ?, ?, ?)"
        )

    @property
    def _conn(self) -> aiosqlite.Connection:
        if self._db is None:
            raise AuditSinkError(f"audit store {self.url.redacted} is not connected")
        return self._db

    def lock_path(self, chain: str) -> Path:
        """The lock file of ``chain``'s writer: beside the database (symbolic links
        resolved, so two names for one file share one lock)."""
        database = Path(os.path.realpath(self.url.target))
        return database.with_name(f"{database.name}.{self._table}.{chain}.lock")

    async def claim(self, chain: str) -> None:
        if self._claimed is not None and self._claimed != chain:
            raise ValueError(f"this store already writes chain {self._claimed!r}")
        self._claimed = chain
        await self._hold_claim()

    async def _hold_claim(self) -> None:
        chain = self._claimed
        if chain is None or self._writer_lock is not None or self.url.target == ":memory:":
            return
        path = self.lock_path(chain)
        try:
            self._writer_lock = await asyncio.to_thread(self._lock_file, path)
        except LockHeldError as exc:
            raise ChainInUseError(self._in_use(chain, exc)) from None
        except OSError as exc:
            raise AuditSinkError(
                f"cannot lock audit chain {chain!r}: {path}: {exc.strerror or exc}"
            ) from exc

    def _lock_file(self, path: Path) -> LockFile:
        if self._create:
            path.parent.mkdir(parents=True, exist_ok=True)
        return LockFile.acquire(path)

    def _in_use(self, chain: str, exc: LockHeldError) -> str:
        if exc.this_process:
            who = "by this gateway already (does another audit.url name the same file?)"
        else:
            holder = f" ({exc.holder})" if exc.holder else ""
            who = f"by another process{holder}"
        return (
            f"audit chain {chain!r} in {self.url.target} is being written {who};"
            f" lock file {exc.path}. A hash chain has exactly one writer: stop that gateway"
            " first, or give this instance its own audit.chain or its own audit.url"
            " (another SQLite file); several gateways behind a load balancer should share a"
            " PostgreSQL audit.url, each with its own audit.chain."
        )

    async def connect(self) -> None:
        await self._hold_claim()
        if self._db is not None:
            return
        target = self.url.target
        if target != ":memory:":
            path = Path(target)
            if not await asyncio.to_thread(path.exists):
                if not self._create:
                    raise AuditStoreNotFoundError(f"no audit database at {path}")
                path.parent.mkdir(parents=True, exist_ok=True)
        try:
            database = await aiosqlite.connect(target, isolation_level=None)
        except sqlite3.Error as exc:
            raise AuditSinkError(f"cannot open audit database {target}: {exc}") from exc
        try:
            await database.execute("PRAGMA journal_mode=WAL")
            synchronous = "FULL" if self._durable else "NORMAL"
            await database.execute(f"PRAGMA synchronous={synchronous}")
            await database.execute("PRAGMA busy_timeout=5000")
            await database.execute("PRAGMA cache_size=-32768")  # 32 MiB: batches of 5000 rows
            if self._create:
                await self._create_tables(database)
            else:
                await self._check_tables(database)
        except sqlite3.DatabaseError as exc:
            await database.close()
            raise AuditSinkError(f"{target} is not a usable SQLite database: {exc}") from exc
        except BaseException:
            await database.close()
            raise
        self._db = database

    async def _create_tables(self, database: aiosqlite.Connection) -> None:
        table = self._table
        await database.executescript(
            f"""
            CREATE TABLE IF NOT EXISTS {table} (
                chain TEXT NOT NULL,
                seq INTEGER NOT NULL,
                time_us INTEGER NOT NULL,
                time TEXT GENERATED ALWAYS AS
                    (strftime('%Y-%m-%dT%H:%M:%fZ', time_us / 1000000.0, 'unixepoch')) VIRTUAL,
                request_id TEXT NOT NULL,
                method TEXT NOT NULL,
                route TEXT,
                path_template TEXT,
                status INTEGER NOT NULL,
                decision TEXT NOT NULL,
                reason TEXT,
                consumer TEXT,
                auth_method TEXT,
                credential_id TEXT,
                client_ip TEXT,
                findings TEXT NOT NULL,
                gateway_latency_us INTEGER NOT NULL,
                upstream_latency_us INTEGER,
                bytes_in INTEGER NOT NULL,
                bytes_out INTEGER NOT NULL,
                pii_categories TEXT NOT NULL,
                prev_hash BLOB NOT NULL,
                hash BLOB NOT NULL,
                PRIMARY KEY (chain, seq)
            ) WITHOUT ROWID;
            CREATE INDEX IF NOT EXISTS {table}_time ON {table} (time_us, chain, seq);
            CREATE TABLE IF NOT EXISTS {self._checkpoints} (
                chain TEXT NOT NULL,
                seq INTEGER NOT NULL,
                hash BLOB NOT NULL,
                time_us INTEGER NOT NULL,
                kind TEXT NOT NULL,
                key_id TEXT NOT NULL,
                signature BLOB NOT NULL,
                PRIMARY KEY (chain, seq)
            ) WITHOUT ROWID;
            """
        )

    async def _check_tables(self, database: aiosqlite.Connection) -> None:
        cursor = await database.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name IN (?, ?)",
            (self._table, self._checkpoints),
        )
        found = {row[0] for row in await cursor.fetchall()}
        if self._table not in found:
            raise AuditStoreNotFoundError(
                f"{self.url.target} has no audit table {self._table!r}"
                " (is this the right database, or was ?table= meant?)"
            )
        if self._checkpoints not in found:
            raise AuditStoreNotFoundError(
                f"{self.url.target} has no checkpoint table {self._checkpoints!r}"
            )

    async def close(self) -> None:
        try:
            if self._db is not None:
                database, self._db = self._db, None
                await database.close()
        finally:
            # Only after the last write: the next writer may start as soon as this is gone.
            if self._writer_lock is not None:
                lock, self._writer_lock = self._writer_lock, None
                lock.release()

    async def _write(self, statements: list[tuple[str, Any, bool]]) -> None:
        """Run (sql, params, many) statements in one transaction, in one trip to the
        connection's thread.

        Statement by statement through aiosqlite, a batch cost four hand-offs between the
        event loop and that thread (BEGIN, INSERT, COMMIT, and the checkpoint), each a
        thread wake-up and a loop wake-up; in strict mode there is one batch per group
        commit, so that overhead was paid per few requests. ``Connection._execute`` (run a
        function on the connection's thread) is aiosqlite's own private API, stable since
        0.17; aiosqlite is pinned.
        """
        async with self._lock:
            database: Any = self._conn
            try:
                await database._execute(_transaction, database._conn, statements)
            except sqlite3.Error as exc:
                raise AuditSinkError(f"audit database {self.url.target}: {exc}") from exc

    async def _fetch(self, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        async with self._lock:
            try:
                rows = await self._conn.execute_fetchall(sql, params)
            except sqlite3.Error as exc:
                raise AuditSinkError(f"audit database {self.url.target}: {exc}") from exc
        return list(rows)

    @staticmethod
    def _checkpoint_params(checkpoint: Checkpoint) -> tuple[Any, ...]:
        return (
            checkpoint.chain,
            checkpoint.seq,
            checkpoint.hash,
            datetime_to_us(checkpoint.time),
            checkpoint.kind,
            checkpoint.key_id,
            checkpoint.signature,
        )

    async def append(
        self, rows: Sequence[ChainedRecord], checkpoint: Checkpoint | None = None
    ) -> None:
        await self._hold_claim()
        # A generator: aiosqlite's thread builds the rows while binding them, not the
        # event loop (the same CPU work, but the loop keeps serving in between).
        statements: list[tuple[str, Any, bool]] = [
            (self._insert, (_row(sealed) for sealed in rows), True)
        ]
        if checkpoint is not None:
            statements.append((self._insert_checkpoint, self._checkpoint_params(checkpoint), False))
        await self._write(statements)

    async def append_replayed(self, rows: Sequence[ChainedRecord]) -> None:
        if not rows:
            return
        chain = rows[0].chain
        await self._hold_claim()
        async with self._lock:
            database = self._conn
            try:
                await database.execute("BEGIN IMMEDIATE")
                try:
                    await database.executemany(self._insert_ignore, [_row(row) for row in rows])
                    cursor = await database.execute(
                        f"SELECT seq, hash FROM {self._table}"
                        " WHERE chain = ? AND seq BETWEEN ? AND ?",
                        (chain, rows[0].seq, rows[-1].seq),
                    )
                    stored = {row[0]: bytes(row[1]) for row in await cursor.fetchall()}
                    await cursor.close()
                    check_replayed(rows, stored)
                    await database.execute("COMMIT")
                except BaseException:
                    if database.in_transaction:
                        await database.execute("ROLLBACK")
                    raise
            except sqlite3.Error as exc:
                raise AuditSinkError(f"audit database {self.url.target}: {exc}") from exc

    async def tail(self, chain: str) -> tuple[int, bytes] | None:
        rows = await self._fetch(
            f"SELECT seq, hash FROM {self._table} WHERE chain = ? ORDER BY seq DESC LIMIT 1",
            (chain,),
        )
        return (rows[0][0], bytes(rows[0][1])) if rows else None

    async def chains(self) -> list[str]:
        rows = await self._fetch(f"SELECT DISTINCT chain FROM {self._table} ORDER BY chain")
        return [row[0] for row in rows]

    async def read_chain(self, chain: str, after_seq: int, limit: int) -> list[ChainedRecord]:
        rows = await self._fetch(
            f"SELECT {_COLUMNS} FROM {self._table} WHERE chain = ? AND seq > ?"
            " ORDER BY seq LIMIT ?",
            (chain, after_seq, limit),
        )
        return [_sealed(row) for row in rows]

    async def seqs_with_hash(self, chain: str, digest: bytes) -> list[int]:
        rows = await self._fetch(
            f"SELECT seq FROM {self._table} WHERE chain = ? AND hash = ? ORDER BY seq",
            (chain, digest),
        )
        return [row[0] for row in rows]

    async def checkpoints(self, chain: str | None = None) -> list[Checkpoint]:
        sql = f"SELECT chain, seq, hash, time_us, kind, key_id, signature FROM {self._checkpoints}"
        if chain is None:
            rows = await self._fetch(sql + " ORDER BY chain, seq")
        else:
            rows = await self._fetch(sql + " WHERE chain = ? ORDER BY seq", (chain,))
        return [_checkpoint(row) for row in rows]

    async def add_checkpoint(self, checkpoint: Checkpoint) -> None:
        await self._hold_claim()
        params = self._checkpoint_params(checkpoint)
        await self._write([(self._insert_checkpoint, params, False)])

    async def query(self, query: AuditQuery) -> AuditPage:
        where, params = build_where(query, lambda _: "?", "time_us", lambda micros: micros)
        order = "DESC" if query.newest_first else "ASC"
        limit = max(1, min(query.limit, 10_000))
        rows = await self._fetch(
            f"SELECT {_COLUMNS} FROM {self._table} WHERE {where}"
            f" ORDER BY time_us {order}, chain {order}, seq {order} LIMIT ?",
            [*params, limit + 1],
        )
        records = [_sealed(row) for row in rows[:limit]]
        more = len(rows) > limit
        return AuditPage(records, encode_cursor(records[-1]) if more and records else None)

    async def summary_rows(
        self, since: datetime, until: datetime, width_us: int
    ) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]:
        timeline_sql, breakdown_sql = summary_queries(
            self._table,
            "time_us",
            lambda start, width: f"(time_us - {start}) / {width}",
            lambda index: f"?{index}",
        )
        params = (datetime_to_us(since), datetime_to_us(until), width_us)
        timeline = await self._fetch(timeline_sql, params)
        breakdown = await self._fetch(breakdown_sql, params)
        return [tuple(row) for row in timeline], [tuple(row) for row in breakdown]

    async def first_seq_since(self, chain: str, since: datetime) -> int | None:
        rows = await self._fetch(
            f"SELECT min(seq) FROM {self._table} WHERE chain = ? AND time_us >= ?",
            (chain, datetime_to_us(since)),
        )
        value = rows[0][0] if rows else None
        return int(value) if value is not None else None

    async def delete_through(self, chain: str, seq: int, anchor: Checkpoint) -> int:
        count = await self._fetch(
            f"SELECT count(*) FROM {self._table} WHERE chain = ? AND seq <= ?", (chain, seq)
        )
        await self._write(
            [
                (self._insert_checkpoint, self._checkpoint_params(anchor), False),
                (f"DELETE FROM {self._table} WHERE chain = ? AND seq <= ?", (chain, seq), False),
            ]
        )
        return int(count[0][0])
