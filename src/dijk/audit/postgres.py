"""PostgreSQL audit store (asyncpg): for production and many gateway instances.

Batches go in with binary ``COPY`` inside one transaction (plus the checkpoint, if
due). Replayed batches use ``INSERT ... ON CONFLICT DO NOTHING`` and are checked against
what is stored. A small pool serves the writer and readers (queries, verification) at
the same time; broken connections are replaced by the pool on the next use.

One writer per chain: :meth:`PostgresAuditStore.claim` takes a session advisory lock
(``pg_try_advisory_lock``, never waiting) keyed on the schema-qualified table and the chain,
on a connection of its own outside the pool (the pool resets a connection it takes back,
and that would drop the lock). PostgreSQL releases it when that session ends, so a gateway
that dies (``kill -9`` included) frees its chain at once, and a host that vanishes within
about half a minute (server-side TCP keepalives are set on the session). If the session is
lost while the writer runs, the next write takes the lock again before it writes, or is
refused with :class:`ChainInUseError` when another writer has it by then. Readers never
take the lock.
"""

# S608: table names in these queries come from parse_store_url, which allows only
# [a-z_][a-z0-9_]*; every value is a bound parameter.
# ruff: noqa: S608
from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import socket
from collections.abc import Iterator, Sequence
from datetime import datetime
from typing import Any, Final, cast

import asyncpg
import structlog

from dijk.audit.chain import ChainedRecord, Checkpoint
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

__all__ = ["PostgresAuditStore"]

_COLUMN_NAMES: Final = (
    "chain",
    "seq",
    "time",
    "request_id",
    "method",
    "route",
    "path_template",
    "status",
    "decision",
    "reason",
    "consumer",
    "auth_method",
    "credential_id",
    "client_ip",
    "findings",
    "gateway_latency_us",
    "upstream_latency_us",
    "bytes_in",
    "bytes_out",
    "pii_categories",
    "prev_hash",
    "hash",
)
_COLUMNS: Final = ", ".join(_COLUMN_NAMES)
_VALUES: Final = ", ".join(f"${index}" for index in range(1, len(_COLUMN_NAMES) + 1))
_CONNECT_TIMEOUT_S: Final = 5.0
_COMMAND_TIMEOUT_S: Final = 60.0
# Errors that mean "the sink is unavailable" rather than a bug of ours.
_SINK_ERRORS: Final = (OSError, asyncio.TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError)
_LOG: Final = structlog.get_logger("dijk.audit")
# Server-side keepalives on the lock's session: a writer whose host vanished (no FIN ever
# comes) loses the lock after about idle + interval * count seconds instead of hours.
_LOCK_SESSION: Final = (
    "SELECT set_config('application_name', $1, false),"
    " set_config('tcp_keepalives_idle', '10', false),"
    " set_config('tcp_keepalives_interval', '5', false),"
    " set_config('tcp_keepalives_count', '3', false)"
)
# The schema the table is (or, once created, will be) in: part of the lock's key.
_TABLE_SCHEMA: Final = (
    "SELECT coalesce((SELECT n.nspname FROM pg_class c JOIN pg_namespace n"
    " ON n.oid = c.relnamespace WHERE c.oid = to_regclass($1)), current_schema(), '')"
)
# Who holds a bigint advisory lock: pg_locks splits the key into classid (high 32 bits)
# and objid (low 32 bits), objsubid 1.
_LOCK_HOLDER: Final = (
    "SELECT a.application_name, a.pid, host(a.client_addr) AS client, a.backend_start"
    " FROM pg_locks l LEFT JOIN pg_stat_activity a ON a.pid = l.pid"
    " WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 1"
    " AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())"
    " AND l.classid = $1 AND l.objid = $2 LIMIT 1"
)


def writer_lock_key(schema: str, table: str, chain: str) -> int:
    """The advisory lock key (signed 64 bits) of the writer of ``chain`` in a table."""
    digest = hashlib.sha256(f"dijk.audit.writer\0{schema}.{table}\0{chain}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


def _application_name() -> str:
    return f"dijk audit writer {socket.gethostname()} pid {os.getpid()}"[:63]


def _row(sealed: ChainedRecord) -> tuple[Any, ...]:
    record = sealed.record
    return (
        sealed.chain,
        sealed.seq,
        record.time,
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


def _sealed(row: Any) -> ChainedRecord:
    record = stored_record(
        time_us=datetime_to_us(row["time"]),
        request_id=row["request_id"],
        method=row["method"],
        route=row["route"],
        path_template=row["path_template"],
        status=row["status"],
        decision=row["decision"],
        reason=row["reason"],
        consumer=row["consumer"],
        auth_method=row["auth_method"],
        credential_id=row["credential_id"],
        client_ip=row["client_ip"],
        findings=row["findings"],
        gateway_latency_us=row["gateway_latency_us"],
        upstream_latency_us=row["upstream_latency_us"],
        bytes_in=row["bytes_in"],
        bytes_out=row["bytes_out"],
        pii_categories=row["pii_categories"],
    )
    return ChainedRecord(
        row["chain"], row["seq"], bytes(row["prev_hash"]), bytes(row["hash"]), record
    )


def _checkpoint(row: Any) -> Checkpoint:
    return Checkpoint(
        chain=row["chain"],
        seq=row["seq"],
        hash=bytes(row["hash"]),
        time=datetime_from_us(datetime_to_us(row["time"])),
        kind=row["kind"],
        key_id=row["key_id"],
        signature=bytes(row["signature"]),
    )


class PostgresAuditStore(AuditStore):
    def __init__(self, url: StoreURL, *, create: bool = False):
        self.url = url
        self._create = create
        self._pool: Any = None
        self._claimed: str | None = None
        self._lock_connection: Any = None
        self._claim_guard = asyncio.Lock()
        table = url.table
        self._table = table
        self._checkpoints = f"{table}_checkpoint"
        self._insert_ignore = (
            f"INSERT INTO {table} ({_COLUMNS}) VALUES ({_VALUES})"
            " ON CONFLICT (chain, seq) DO NOTHING"
        )
        self._insert_checkpoint = (
            f"INSERT INTO {self._checkpoints} (chain, seq, hash, time, kind, key_id, signature)"
            " VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (chain, seq) DO NOTHING"
        )

    def _error(self, exc: BaseException) -> AuditSinkError:
        detail = str(exc) or type(exc).__name__
        return AuditSinkError(f"audit database {self.url.redacted}: {detail}")

    async def claim(self, chain: str) -> None:
        if self._claimed is not None and self._claimed != chain:
            raise ValueError(f"this store already writes chain {self._claimed!r}")
        self._claimed = chain
        await self._hold_claim()

    async def _hold_claim(self, check: bool = False) -> None:
        """Make sure the claimed chain's lock is held; with ``check``, ask the server.

        Without ``check`` this costs nothing while the lock's connection looks alive (the
        write path); ``connect`` checks, because it runs after outages, when a session may
        have ended without the client noticing.
        """
        if self._claimed is None:
            return
        held = self._lock_connection
        if not check and held is not None and not held.is_closed():
            return  # the write path: no lock, no await
        async with self._claim_guard:
            connection = self._lock_connection
            if connection is not None and not connection.is_closed():
                if not check:
                    return
                try:
                    await connection.fetchval("SELECT 1", timeout=_CONNECT_TIMEOUT_S)
                    return
                except _SINK_ERRORS:
                    connection.terminate()
            if connection is not None:
                self._lock_connection = None
                _LOG.warning(
                    "audit: lost the session holding chain %r of %s; taking it again",
                    self._claimed,
                    self.url.redacted,
                )
            self._lock_connection = await self._take_lock(self._claimed)

    @contextlib.contextmanager
    def _connect_errors(self) -> Iterator[None]:
        """Connection failures as the store's errors: missing database, unreachable
        server, or a URL asyncpg cannot parse."""
        try:
            yield
        except asyncpg.InvalidCatalogNameError as exc:
            raise AuditStoreNotFoundError(f"{self.url.redacted}: {exc}") from exc
        except _SINK_ERRORS as exc:
            raise self._error(exc) from exc
        except ValueError as exc:  # asyncpg's DSN parser
            raise AuditSinkError(f"bad PostgreSQL URL {self.url.redacted}: {exc}") from exc

    async def _take_lock(self, chain: str) -> Any:
        """A new session holding the chain's advisory lock, or an error at once."""
        with self._connect_errors():
            connection = await asyncpg.connect(
                self.url.target, timeout=_CONNECT_TIMEOUT_S, command_timeout=_CONNECT_TIMEOUT_S
            )
        try:
            with contextlib.suppress(asyncpg.PostgresError):  # a pooler may refuse these
                await connection.execute(_LOCK_SESSION, _application_name())
            schema = str(await connection.fetchval(_TABLE_SCHEMA, self._table))
            key = writer_lock_key(schema, self._table, chain)
            if await connection.fetchval("SELECT pg_try_advisory_lock($1)", key):
                return connection
            who = await self._holder(connection, key)
        except _SINK_ERRORS as exc:
            connection.terminate()
            raise self._error(exc) from exc
        except BaseException:
            connection.terminate()
            raise
        try:
            await asyncio.wait_for(connection.close(), timeout=_CONNECT_TIMEOUT_S)
        except (TimeoutError, *_SINK_ERRORS):
            connection.terminate()
        raise ChainInUseError(
            f"audit chain {chain!r} in table {schema}.{self._table} of {self.url.redacted} is"
            f" being written {who}. A hash chain has exactly one writer: give each gateway"
            " instance its own audit.chain (its host name, say), or stop the other one first"
            " (PostgreSQL frees the chain of a gateway that died within about 30 s)."
        )

    @staticmethod
    async def _holder(connection: Any, key: int) -> str:
        """Who holds ``key``, as far as ``pg_stat_activity`` shows it."""
        unsigned = key & 0xFFFF_FFFF_FFFF_FFFF
        try:
            row = await connection.fetchrow(_LOCK_HOLDER, unsigned >> 32, unsigned & 0xFFFF_FFFF)
        except asyncpg.PostgresError:
            row = None
        if row is None or row["pid"] is None:
            return "by another gateway"
        if row["application_name"] == _application_name():
            return "by this gateway already (does another audit.url name the same database?)"
        parts = [str(row["application_name"] or "unnamed session")]
        parts.append(f"PostgreSQL backend pid {row['pid']}")
        if row["client"]:
            parts.append(f"from {row['client']}")
        if row["backend_start"] is not None:
            parts.append(f"since {row['backend_start']:%Y-%m-%dT%H:%M:%S%z}")
        return "by another gateway (" + ", ".join(parts) + ")"

    async def connect(self) -> None:
        await self._hold_claim(check=self._pool is not None)
        if self._pool is not None:
            return
        with self._connect_errors():
            pool = await asyncpg.create_pool(
                self.url.target,
                min_size=1,
                max_size=4,
                timeout=_CONNECT_TIMEOUT_S,
                command_timeout=_COMMAND_TIMEOUT_S,
            )
        try:
            async with pool.acquire() as connection:
                if self._create:
                    await self._create_tables(connection)
                else:
                    await self._check_tables(connection)
        except _SINK_ERRORS as exc:
            await pool.close()
            raise self._error(exc) from exc
        except BaseException:
            await pool.close()
            raise
        self._pool = pool

    async def _create_tables(self, connection: Any) -> None:
        table = self._table
        async with connection.transaction():
            # Serialise DDL: two instances creating the same table at once would collide.
            await connection.execute("SELECT pg_advisory_xact_lock(hashtext($1))", table)
            await connection.execute(
                f"""
                CREATE TABLE IF NOT EXISTS {table} (
                    chain text NOT NULL,
                    seq bigint NOT NULL,
                    time timestamptz NOT NULL,
                    request_id text NOT NULL,
                    method text NOT NULL,
                    route text,
                    path_template text,
                    status integer NOT NULL,
                    decision text NOT NULL,
                    reason text,
                    consumer text,
                    auth_method text,
                    credential_id text,
                    client_ip text,
                    findings text NOT NULL,
                    gateway_latency_us bigint NOT NULL,
                    upstream_latency_us bigint,
                    bytes_in bigint NOT NULL,
                    bytes_out bigint NOT NULL,
                    pii_categories text NOT NULL,
                    prev_hash bytea NOT NULL,
                    hash bytea NOT NULL,
                    PRIMARY KEY (chain, seq)
                );
                CREATE INDEX IF NOT EXISTS {table}_time ON {table} (time, chain, seq);
                CREATE TABLE IF NOT EXISTS {self._checkpoints} (
                    chain text NOT NULL,
                    seq bigint NOT NULL,
                    hash bytea NOT NULL,
                    time timestamptz NOT NULL,
                    kind text NOT NULL,
                    key_id text NOT NULL,
                    signature bytea NOT NULL,
                    PRIMARY KEY (chain, seq)
                );
                """
            )

    async def _check_tables(self, connection: Any) -> None:
        for name in (self._table, self._checkpoints):
            found = await connection.fetchval("SELECT to_regclass($1) IS NOT NULL", name)
            if not found:
                raise AuditStoreNotFoundError(
                    f"{self.url.redacted} has no audit table {name!r}"
                    " (is this the right database, or was ?table= meant?)"
                )

    async def close(self) -> None:
        try:
            if self._pool is not None:
                pool, self._pool = self._pool, None
                try:
                    await asyncio.wait_for(pool.close(), timeout=_CONNECT_TIMEOUT_S)
                except (TimeoutError, *_SINK_ERRORS):
                    pool.terminate()
        finally:
            # Only after the last write: ending the session frees the chain.
            if self._lock_connection is not None:
                connection, self._lock_connection = self._lock_connection, None
                try:
                    await asyncio.wait_for(connection.close(), timeout=_CONNECT_TIMEOUT_S)
                except (TimeoutError, *_SINK_ERRORS):
                    connection.terminate()

    def _acquire(self) -> Any:
        if self._pool is None:
            raise AuditSinkError(f"audit store {self.url.redacted} is not connected")
        return self._pool.acquire()

    async def append(
        self, rows: Sequence[ChainedRecord], checkpoint: Checkpoint | None = None
    ) -> None:
        await self._hold_claim()
        records = [_row(sealed) for sealed in rows]
        try:
            async with self._acquire() as connection, connection.transaction():
                await connection.copy_records_to_table(
                    self._table, records=records, columns=_COLUMN_NAMES
                )
                if checkpoint is not None:
                    await connection.execute(self._insert_checkpoint, *self._params(checkpoint))
        except _SINK_ERRORS as exc:
            raise self._error(exc) from exc

    @staticmethod
    def _params(checkpoint: Checkpoint) -> tuple[Any, ...]:
        return (
            checkpoint.chain,
            checkpoint.seq,
            checkpoint.hash,
            checkpoint.time,
            checkpoint.kind,
            checkpoint.key_id,
            checkpoint.signature,
        )

    async def append_replayed(self, rows: Sequence[ChainedRecord]) -> None:
        if not rows:
            return
        chain = rows[0].chain
        await self._hold_claim()
        try:
            async with self._acquire() as connection, connection.transaction():
                await connection.executemany(self._insert_ignore, [_row(row) for row in rows])
                stored = await connection.fetch(
                    f"SELECT seq, hash FROM {self._table}"
                    " WHERE chain = $1 AND seq BETWEEN $2 AND $3",
                    chain,
                    rows[0].seq,
                    rows[-1].seq,
                )
                # Raising inside the transaction rolls back the rows just inserted.
                check_replayed(rows, {row["seq"]: bytes(row["hash"]) for row in stored})
        except _SINK_ERRORS as exc:
            raise self._error(exc) from exc

    async def _fetch(self, sql: str, *params: Any) -> list[Any]:
        try:
            async with self._acquire() as connection:
                return cast(list[Any], await connection.fetch(sql, *params))
        except _SINK_ERRORS as exc:
            raise self._error(exc) from exc

    async def tail(self, chain: str) -> tuple[int, bytes] | None:
        rows = await self._fetch(
            f"SELECT seq, hash FROM {self._table} WHERE chain = $1 ORDER BY seq DESC LIMIT 1",
            chain,
        )
        return (int(rows[0]["seq"]), bytes(rows[0]["hash"])) if rows else None

    async def chains(self) -> list[str]:
        rows = await self._fetch(f"SELECT DISTINCT chain FROM {self._table} ORDER BY chain")
        return [str(row["chain"]) for row in rows]

    async def read_chain(self, chain: str, after_seq: int, limit: int) -> list[ChainedRecord]:
        rows = await self._fetch(
            f"SELECT {_COLUMNS} FROM {self._table} WHERE chain = $1 AND seq > $2"
            " ORDER BY seq LIMIT $3",
            chain,
            after_seq,
            limit,
        )
        return [_sealed(row) for row in rows]

    async def seqs_with_hash(self, chain: str, digest: bytes) -> list[int]:
        rows = await self._fetch(
            f"SELECT seq FROM {self._table} WHERE chain = $1 AND hash = $2 ORDER BY seq",
            chain,
            digest,
        )
        return [int(row["seq"]) for row in rows]

    async def checkpoints(self, chain: str | None = None) -> list[Checkpoint]:
        sql = f"SELECT chain, seq, hash, time, kind, key_id, signature FROM {self._checkpoints}"
        if chain is None:
            rows = await self._fetch(sql + " ORDER BY chain, seq")
        else:
            rows = await self._fetch(sql + " WHERE chain = $1 ORDER BY seq", chain)
        return [_checkpoint(row) for row in rows]

    async def add_checkpoint(self, checkpoint: Checkpoint) -> None:
        await self._hold_claim()
        try:
            async with self._acquire() as connection:
                await connection.execute(self._insert_checkpoint, *self._params(checkpoint))
        except _SINK_ERRORS as exc:
            raise self._error(exc) from exc

    async def query(self, query: AuditQuery) -> AuditPage:
        where, params = build_where(
            query, lambda index: f"${index}", "time", lambda micros: datetime_from_us(micros)
        )
        order = "DESC" if query.newest_first else "ASC"
        limit = max(1, min(query.limit, 10_000))
        rows = await self._fetch(
            f"SELECT {_COLUMNS} FROM {self._table} WHERE {where}"
            f" ORDER BY time {order}, chain {order}, seq {order} LIMIT ${len(params) + 1}",
            *params,
            limit + 1,
        )
        records = [_sealed(row) for row in rows[:limit]]
        more = len(rows) > limit
        return AuditPage(records, encode_cursor(records[-1]) if more and records else None)

    async def summary_rows(
        self, since: datetime, until: datetime, width_us: int
    ) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]:
        timeline_sql, breakdown_sql = summary_queries(
            self._table,
            "time",
            lambda start, width: (
                f"(extract(epoch from (time - {start}::timestamptz)) * 1000000)::bigint"
                f" / {width}::bigint"
            ),
            lambda index: f"${index}",
        )
        timeline = await self._fetch(timeline_sql, since, until, width_us)
        breakdown = await self._fetch(breakdown_sql, since, until, width_us)
        return [tuple(row) for row in timeline], [tuple(row) for row in breakdown]

    async def first_seq_since(self, chain: str, since: datetime) -> int | None:
        rows = await self._fetch(
            f"SELECT min(seq) AS seq FROM {self._table} WHERE chain = $1 AND time >= $2",
            chain,
            since,
        )
        value = rows[0]["seq"] if rows else None
        return int(value) if value is not None else None

    async def delete_through(self, chain: str, seq: int, anchor: Checkpoint) -> int:
        try:
            async with self._acquire() as connection, connection.transaction():
                await connection.execute(self._insert_checkpoint, *self._params(anchor))
                status = await connection.execute(
                    f"DELETE FROM {self._table} WHERE chain = $1 AND seq <= $2", chain, seq
                )
        except _SINK_ERRORS as exc:
            raise self._error(exc) from exc
        return int(str(status).rsplit(" ", 1)[-1])
