"""The audit store contract, run on SQLite and PostgreSQL over real connections.

Each test gets its own table (``?table=audit_<random>``) so that concurrent runs against
one PostgreSQL server do not collide. Tampering is done the way an intruder with database
access would: plain SQL on the tables.
"""

from __future__ import annotations

import asyncio
import os
import re
import signal
import sqlite3
import subprocess
import sys
import textwrap
import uuid
from collections.abc import AsyncIterator, Sequence
from contextlib import closing
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg  # type: ignore[import-untyped]
import pytest

from dijk.audit.chain import ChainedRecord, ChainSealer, Checkpoint, verify_store
from dijk.audit.keys import AuditKeys
from dijk.audit.postgres import writer_lock_key
from dijk.audit.record import AuditRecord, Finding
from dijk.audit.spool import Spool
from dijk.audit.store import (
    AuditPage,
    AuditQuery,
    AuditSinkError,
    AuditStore,
    ChainConflictError,
    ChainInUseError,
    open_store,
    prune,
)
from dijk.audit.writer import AuditUnavailableError, AuditWriter
from tests.conftest import require_service

SECRET = b"contract-suite-secret-0123456789abcdef"
KEYS = AuditKeys.from_secret(SECRET)
START = datetime(2025, 2, 1, 9, 0, tzinfo=UTC)
# DIJK_TEST_POSTGRES_URL, when set, is the only server tried; else the usual local users.
POSTGRES_URLS = (
    [os.environ["DIJK_TEST_POSTGRES_URL"]]
    if os.environ.get("DIJK_TEST_POSTGRES_URL")
    else ["postgresql://postgres@127.0.0.1:5432/test", "postgresql://root@127.0.0.1:5432/test"]
)
_postgres: dict[str, str | None] = {}


async def postgres_url() -> str:
    """A reachable PostgreSQL URL, or skip (fail under CI=true)."""
    if "url" not in _postgres:
        _postgres["url"] = None
        errors = []
        for url in POSTGRES_URLS:
            try:
                connection = await asyncpg.connect(url, timeout=3)
            except (OSError, asyncpg.PostgresError, TimeoutError) as exc:
                errors.append(f"{url}: {exc}")
                continue
            await connection.close()
            _postgres["url"] = url
            break
        _postgres["error"] = "; ".join(errors)
    found = _postgres["url"]
    require_service(
        found is not None,
        f"PostgreSQL not reachable for the audit contract suite ({_postgres.get('error')})",
    )
    assert found is not None
    return found


@dataclass
class Backend:
    kind: str
    url: str
    base: str
    table: str
    directory: Path

    @property
    def time_column(self) -> str:
        return "time_us" if self.kind == "sqlite" else "time"

    async def sql(self, *statements: str) -> list[Any]:
        """Run statements as an intruder would; returns the last one's rows."""
        if self.kind == "sqlite":
            with closing(sqlite3.connect(self.base)) as connection, connection:
                rows: list[Any] = []
                for statement in statements:
                    rows = connection.execute(statement).fetchall()
                return rows
        connection = await asyncpg.connect(self.base)
        try:
            result: list[Any] = []
            for statement in statements:
                result = await connection.fetch(statement)
            return result
        finally:
            await connection.close()

    def store(self, create: bool = False) -> AuditStore:
        return open_store(self.url, create=create)

    def writer(self, store: AuditStore | None = None, **options: Any) -> AuditWriter:
        options.setdefault("spool_path", self.directory / f"{self.table}.spool")
        options.setdefault("checkpoint_every_records", 1000)
        options.setdefault("retry_interval_s", 0.05)
        return AuditWriter(store or self.store(create=True), KEYS, **options)


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
async def backend(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Backend]:
    table = f"audit_{uuid.uuid4().hex[:12]}"
    if request.param == "sqlite":
        path = tmp_path / "audit.db"
        yield Backend("sqlite", f"sqlite:///{path}?table={table}", str(path), table, tmp_path)
        return
    base = await postgres_url()
    yield Backend("postgresql", f"{base}?table={table}", base, table, tmp_path)
    connection = await asyncpg.connect(base)
    try:
        await connection.execute(f"DROP TABLE IF EXISTS {table}, {table}_checkpoint")
    finally:
        await connection.close()


@pytest.fixture
async def postgres_backend(tmp_path: Path) -> AsyncIterator[Backend]:
    """The PostgreSQL backend alone, for what only PostgreSQL has (sessions, their locks)."""
    table = f"audit_{uuid.uuid4().hex[:12]}"
    base = await postgres_url()
    yield Backend("postgresql", f"{base}?table={table}", base, table, tmp_path)
    connection = await asyncpg.connect(base)
    try:
        await connection.execute(f"DROP TABLE IF EXISTS {table}, {table}_checkpoint")
    finally:
        await connection.close()


def record(number: int, **changes: Any) -> AuditRecord:
    denied = number % 5 == 0
    values: dict[str, Any] = {
        "time": START + timedelta(seconds=number),
        "request_id": f"req-{number}",
        "method": "POST" if number % 3 == 0 else "GET",
        "status": 403 if denied else (404 if number % 7 == 0 else 200),
        "decision": "deny" if denied else "allow",
        "route": "accounts",
        "path_template": "/api/v1/accounts/{id}",
        "reason": ("waf.sqli" if number % 2 else "auth.invalid_key") if denied else None,
        "consumer": "alice" if number % 2 else "bob",
        "auth_method": "api_key",
        "credential_id": f"cred-{number % 4}",
        "client_ip": KEYS.pseudonym(f"192.0.2.{number % 250}"),
        "findings": (Finding("942100", "$.name"),) if denied else (),
        "gateway_latency_us": 1000 + number,
        "upstream_latency_us": None if denied else 800 + number,
        "bytes_in": number,
        "bytes_out": 10 * number,
        "pii_categories": ("email",) if number % 4 == 0 else (),
    }
    values.update(changes)
    return AuditRecord(**values)


async def write(backend: Backend, count: int, first: int = 1, **options: Any) -> AuditWriter:
    writer = backend.writer(**options)
    async with writer:
        for number in range(first, first + count):
            await writer.append(record(number))
    return writer


async def verify(backend: Backend) -> list[tuple[int, str]]:
    async with backend.store() as store:
        report = await verify_store(store, KEYS)
    return [(problem.seq, problem.kind) for chain in report.chains for problem in chain.problems]


async def all_rows(store: AuditStore, **filters: Any) -> list[ChainedRecord]:
    rows: list[ChainedRecord] = []
    cursor = None
    while True:
        page: AuditPage = await store.query(AuditQuery(limit=7, cursor=cursor, **filters))
        rows.extend(page.records)
        if page.next_cursor is None:
            return rows
        cursor = page.next_cursor


# -- write, read back, verify -------------------------------------------------------------


async def test_written_records_read_back_exactly_and_verify(backend: Backend) -> None:
    writer = await write(backend, 60)
    assert writer.stats.committed == 60
    async with backend.store() as store:
        rows = await all_rows(store)
        checkpoints = await store.checkpoints()
    assert [row.seq for row in rows] == list(range(1, 61))
    assert [row.record for row in rows] == [record(number) for number in range(1, 61)]
    assert [(item.seq, item.chain) for item in checkpoints] == [(60, "default")]
    assert await verify(backend) == []


async def test_unusual_strings_survive_the_round_trip(backend: Backend) -> None:
    strange = [
        record(1, request_id="ünïcödé-✓-漢字", consumer="o'brien; DROP TABLE x; --"),
        record(2, path_template="/a/{b}?c=%27", reason="waf.x\x00y"),
        record(3, findings=tuple(Finding(f"r{n}", f"$.a[{n}]") for n in range(50))),
        record(4, request_id="x" * 10_000, upstream_latency_us=2**62),
    ]
    async with backend.writer() as writer:
        for item in strange:
            await writer.append(item)
    async with backend.store() as store:
        rows = await all_rows(store)
    assert rows[0].record.request_id == "ünïcödé-✓-漢字"
    assert rows[1].record.reason == "waf.x\ufffdy"
    assert len(rows[2].record.findings) == 50
    assert await verify(backend) == []


async def test_a_restarted_writer_continues_the_chain(backend: Backend) -> None:
    await write(backend, 10)
    await write(backend, 10, first=11)
    async with backend.store() as store:
        assert await store.tail("default") is not None
        rows = await all_rows(store)
    assert [row.seq for row in rows] == list(range(1, 21))
    assert await verify(backend) == []


async def test_two_instances_write_separate_chains_to_one_database(backend: Backend) -> None:
    first = backend.writer(chain="gateway-a", spool_path=backend.directory / "a.spool")
    second = backend.writer(chain="gateway-b", spool_path=backend.directory / "b.spool")
    async with first, second:
        await asyncio.gather(
            *(first.append(record(number)) for number in range(1, 21)),
            *(second.append(record(number)) for number in range(21, 31)),
        )
    async with backend.store() as store:
        assert await store.chains() == ["gateway-a", "gateway-b"]
        report = await verify_store(store, KEYS)
    assert report.intact
    assert [(chain.chain, chain.records) for chain in report.chains] == [
        ("gateway-a", 20),
        ("gateway-b", 10),
    ]


# -- one writer per chain -----------------------------------------------------------------

HOLDING_WRITER = textwrap.dedent(
    """
    import asyncio, sys
    from pathlib import Path
    from dijk.audit import AuditKeys, AuditWriter, open_store

    async def main(url, spool, secret):
        keys = AuditKeys.from_secret(secret.encode())
        writer = AuditWriter(open_store(url, create=True), keys, spool_path=Path(spool))
        await writer.start()
        print("ready", flush=True)
        await asyncio.sleep(120)

    asyncio.run(main(*sys.argv[1:4]))
    """
)


def holding_writer(backend: Backend) -> subprocess.Popen[str]:
    """Another process that starts a writer of the ``default`` chain and keeps it."""
    child = subprocess.Popen(
        [
            sys.executable,
            "-c",
            HOLDING_WRITER,
            backend.url,
            str(backend.directory / "child.spool"),
            SECRET.decode(),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert child.stdout is not None
    line = child.stdout.readline()
    assert line.strip() == "ready", child.stderr.read() if child.stderr else line
    return child


async def refused_start(writer: AuditWriter) -> str:
    """Start ``writer`` expecting a refusal within two seconds; returns the message."""
    started = asyncio.get_running_loop().time()
    with pytest.raises(ChainInUseError) as refused:
        await writer.start()
    assert asyncio.get_running_loop().time() - started < 2.0, "refused, but not at once"
    assert not writer.running
    return str(refused.value)


async def test_a_second_writer_of_a_chain_is_refused_at_once_while_readers_go_on(
    backend: Backend,
) -> None:
    first = backend.writer()
    async with first:
        for number in range(1, 6):
            await first.append(record(number))
        await first.flush()
        second = backend.writer(spool_path=backend.directory / "second.spool")
        message = await refused_start(second)
        assert "audit chain 'default'" in message
        assert (backend.base if backend.kind == "sqlite" else backend.table) in message
        assert "by this gateway already" in message  # same process here
        assert "exactly one writer" in message
        assert "audit.chain" in message
        assert not list(backend.directory.glob("second.spool*")), "refused before any write"
        # Reading is not writing: queries and verification go on while the chain is held.
        async with backend.store() as reader:
            assert [row.seq for row in await all_rows(reader)] == [1, 2, 3, 4, 5]
        assert await verify(backend) == []
        # The refusal took nothing from the writer that holds the chain.
        for number in range(6, 11):
            await first.append(record(number))
        await first.flush()
        assert first.sink_available
        await second.close()  # closing a refused writer must not free the chain either
        with pytest.raises(ChainInUseError):
            await backend.writer(spool_path=backend.directory / "third.spool").start()
    await write(backend, 5, first=11)  # once the first is closed, the next one continues
    async with backend.store() as store:
        assert [row.seq for row in await all_rows(store)] == list(range(1, 16))
    assert await verify(backend) == []


async def test_a_writer_in_another_process_is_named_and_its_kill_9_frees_the_chain(
    backend: Backend,
) -> None:
    child = holding_writer(backend)
    try:
        message = await refused_start(backend.writer())
        assert re.search(rf"\bpid {child.pid}\b", message)  # who holds it, for the operator
        assert "by another" in message
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait(10)
    # No stale lock: the kernel (SQLite's lock file) or PostgreSQL (the session ends with
    # the socket) releases it with the process; a PostgreSQL backend may take a moment.
    deadline = asyncio.get_running_loop().time() + 5.0
    while True:
        try:
            await write(backend, 3)
            break
        except ChainInUseError:
            assert asyncio.get_running_loop().time() < deadline, "the chain stayed locked"
            await asyncio.sleep(0.05)
    async with backend.store() as store:
        assert [row.seq for row in await all_rows(store)] == [1, 2, 3]
    assert await verify(backend) == []


async def test_two_writers_never_share_a_spool_file(backend: Backend) -> None:
    shared = backend.directory / "shared.spool"
    async with backend.writer(chain="gateway-a", spool_path=shared) as first:
        await first.append(record(1))
        message = await refused_start(backend.writer(chain="gateway-b", spool_path=shared))
        assert f"audit spool {shared}" in message
        assert "audit.spool_dir" in message
    async with backend.store() as store:
        assert await store.chains() == ["gateway-a"]  # the refused writer wrote nothing


async def chain_lock_holder(backend: Backend, chain: str = "default") -> int | None:
    """PostgreSQL backend pid holding the writer's advisory lock of ``chain``, if any."""
    schema = (await backend.sql("SELECT current_schema()"))[0][0]
    key = writer_lock_key(schema, backend.table, chain) & 0xFFFF_FFFF_FFFF_FFFF
    rows = await backend.sql(
        "SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted AND objsubid = 1"
        f" AND classid = {key >> 32} AND objid = {key & 0xFFFF_FFFF}"
    )
    return int(rows[0][0]) if rows else None


async def end_session_of_chain_lock(backend: Backend) -> None:
    """What a PostgreSQL restart or an idle-session timeout does to the writer's lock."""
    holder = await chain_lock_holder(backend)
    assert holder is not None
    await backend.sql(f"SELECT pg_terminate_backend({holder})")
    await wait_until_async(lambda: chain_lock_holder(backend), None)


async def wait_until_async(probe: Any, expected: Any, timeout_s: float = 10.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout_s
    while await probe() != expected:
        assert asyncio.get_running_loop().time() < deadline, "condition not reached in time"
        await asyncio.sleep(0.02)


@pytest.mark.postgres
async def test_postgres_holds_the_chain_in_a_session_and_takes_it_again_if_lost(
    postgres_backend: Backend,
) -> None:
    backend = postgres_backend
    async with backend.writer() as writer:
        await writer.append(record(1))
        await writer.flush()
        first_holder = await chain_lock_holder(backend)
        assert first_holder is not None
        await end_session_of_chain_lock(backend)
        await writer.append(record(2))
        await writer.flush()
        assert writer.sink_available
        second_holder = await chain_lock_holder(backend)
        assert second_holder not in (None, first_holder)  # the chain was taken again
    assert await chain_lock_holder(backend) is None  # close frees it
    async with backend.store() as store:
        assert [row.seq for row in await all_rows(store)] == [1, 2]
    assert await verify(backend) == []


@pytest.mark.postgres
async def test_postgres_a_writer_whose_chain_was_taken_meanwhile_never_writes_into_it(
    postgres_backend: Backend,
) -> None:
    backend = postgres_backend
    first = backend.writer()
    second = backend.writer(spool_path=backend.directory / "second.spool")
    async with first:
        await first.append(record(1))
        await first.flush()
        await end_session_of_chain_lock(backend)
        await second.start()  # the chain was free: the newcomer holds it now
        await first.append(record(2))
        await first.flush()
        assert not first.sink_available  # refused (ChainInUseError): kept in its spool
        await second.append(record(3))
        await second.close()
    async with backend.store() as store:
        rows = await all_rows(store)
    assert [(row.seq, row.record.request_id) for row in rows] == [(1, "req-1"), (2, "req-3")]
    assert await verify(backend) == []  # one chain, never forked


# -- queries ------------------------------------------------------------------------------


async def test_query_filters(backend: Backend) -> None:
    await write(backend, 40)

    async def ids(**filters: Any) -> list[int]:
        async with backend.store() as store:
            rows = await all_rows(store, **filters)
        return [int(row.record.request_id.split("-")[1]) for row in rows]

    assert await ids(since=START + timedelta(seconds=35)) == [35, 36, 37, 38, 39, 40]
    assert await ids(until=START + timedelta(seconds=3)) == [1, 2]
    assert await ids(consumer="bob", status="4xx") == [10, 14, 20, 28, 30, 40]
    assert await ids(status=404) == [7, 14, 21, 28]
    assert await ids(reason="waf.sqli") == [5, 15, 25, 35]
    assert await ids(reason="auth.*") == [10, 20, 30, 40]
    assert await ids(reason="AUTH.*") == []
    assert await ids(reason="waf_*") == []
    assert await ids(decision="deny", consumer="alice") == [5, 15, 25, 35]


async def test_pagination_covers_everything_once_in_both_directions(backend: Backend) -> None:
    await write(backend, 30)
    async with backend.store() as store:
        oldest_first = await all_rows(store)
        newest_first = await all_rows(store, newest_first=True)
        first_page = await store.query(AuditQuery(limit=30))
    assert [row.seq for row in oldest_first] == list(range(1, 31))
    assert [row.seq for row in newest_first] == list(range(30, 0, -1))
    assert first_page.next_cursor is None


async def test_records_with_the_same_time_page_by_chain_and_seq(backend: Backend) -> None:
    async with backend.writer() as writer:
        for number in range(1, 16):
            await writer.append(record(number, time=START))
    async with backend.store() as store:
        rows = await all_rows(store)
    assert [row.seq for row in rows] == list(range(1, 16))


# -- tampering with plain SQL -------------------------------------------------------------


def _columns(backend: Backend, **replace: str) -> tuple[str, str]:
    names = [
        "chain",
        "seq",
        backend.time_column,
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
    ]
    return ", ".join(names), ", ".join(replace.get(name, name) for name in names)


def tamper_statements(backend: Backend, kind: str) -> list[str]:
    table = backend.table
    where = "chain = 'default' AND"
    if kind == "modified":
        return [f"UPDATE {table} SET consumer = 'mallory' WHERE {where} seq = 17"]
    if kind == "deleted":
        return [f"DELETE FROM {table} WHERE {where} seq = 30"]
    if kind == "reordered":
        return [
            f"UPDATE {table} SET seq = -20 WHERE {where} seq = 20",
            f"UPDATE {table} SET seq = 20 WHERE {where} seq = 25",
            f"UPDATE {table} SET seq = 25 WHERE {where} seq = -20",
        ]
    if kind == "inserted":
        names, values = _columns(backend, seq="40", request_id="'forged-request'")
        return [
            f"UPDATE {table} SET seq = seq + 1000 WHERE {where} seq >= 40",
            f"UPDATE {table} SET seq = seq - 999 WHERE {where} seq >= 1000",
            f"INSERT INTO {table} ({names}) SELECT {values} FROM {table} WHERE {where} seq = 39",
        ]
    if kind == "truncated":
        return [f"DELETE FROM {table} WHERE {where} seq >= 55"]
    raise AssertionError(kind)


@pytest.mark.parametrize(
    ("kind", "seq"),
    [("modified", 17), ("deleted", 30), ("reordered", 20), ("inserted", 40), ("truncated", 55)],
)
async def test_tampering_is_detected_with_its_seq_and_kind(
    backend: Backend, kind: str, seq: int
) -> None:
    await write(backend, 60)
    assert await verify(backend) == []
    await backend.sql(*tamper_statements(backend, kind))
    problems = await verify(backend)
    assert problems, f"{kind} went unnoticed"
    assert problems[0] == (seq, kind)


async def test_a_deleted_checkpoint_row_does_not_hide_a_cut_tail_from_an_export(
    backend: Backend,
) -> None:
    await write(backend, 20)
    async with backend.store() as store:
        exported = await store.checkpoints()
    await backend.sql(
        f"DELETE FROM {backend.table} WHERE seq > 15",
        f"DELETE FROM {backend.table}_checkpoint",
    )
    async with backend.store() as store:
        report = await verify_store(store, KEYS, extra_checkpoints=exported)
    problem = report.chains[0].first_problem
    assert problem is not None
    assert (problem.seq, problem.kind) == (16, "truncated")


# -- retention ----------------------------------------------------------------------------


async def test_pruning_keeps_the_chain_verifiable_and_writable(backend: Backend) -> None:
    await write(backend, 30)
    async with backend.store() as store:
        deleted = await prune(store, KEYS, START + timedelta(seconds=21))
        rows = await all_rows(store)
        anchors = [item for item in await store.checkpoints() if item.kind == "prune"]
    assert deleted == {"default": 20}
    async with backend.store() as store:
        assert await prune(store, KEYS, START + timedelta(seconds=21)) == {"default": 0}
    assert [row.seq for row in rows] == list(range(21, 31))
    assert [item.seq for item in anchors] == [20]
    assert await verify(backend) == []
    await write(backend, 5, first=31)
    assert await verify(backend) == []
    await backend.sql(f"DELETE FROM {backend.table}_checkpoint WHERE kind = 'prune'")
    assert (await verify(backend))[0] == (1, "deleted")


async def test_pruning_never_removes_the_newest_record(backend: Backend) -> None:
    await write(backend, 5)
    async with backend.store() as store:
        await prune(store, KEYS, START + timedelta(days=1))
        rows = await all_rows(store)
    assert [row.seq for row in rows] == [5]
    assert await verify(backend) == []


# -- sink outages: spool and replay -------------------------------------------------------


class FlakyStore(AuditStore):
    """A real store that can be switched off (every write and connect then fails)."""

    def __init__(self, inner: AuditStore):
        self.inner = inner
        self.url = inner.url
        self.down = False

    def _check(self) -> None:
        if self.down:
            raise AuditSinkError("switched off by the test")

    async def connect(self) -> None:
        self._check()
        await self.inner.connect()

    async def close(self) -> None:
        await self.inner.close()

    async def claim(self, chain: str) -> None:
        self._check()
        await self.inner.claim(chain)

    async def append(
        self, rows: Sequence[ChainedRecord], checkpoint: Checkpoint | None = None
    ) -> None:
        self._check()
        await self.inner.append(rows, checkpoint)

    async def append_replayed(self, rows: Sequence[ChainedRecord]) -> None:
        self._check()
        await self.inner.append_replayed(rows)

    async def tail(self, chain: str) -> tuple[int, bytes] | None:
        self._check()
        return await self.inner.tail(chain)

    async def chains(self) -> list[str]:
        return await self.inner.chains()

    async def read_chain(self, chain: str, after_seq: int, limit: int) -> list[ChainedRecord]:
        return await self.inner.read_chain(chain, after_seq, limit)

    async def seqs_with_hash(self, chain: str, digest: bytes) -> list[int]:
        return await self.inner.seqs_with_hash(chain, digest)

    async def checkpoints(self, chain: str | None = None) -> list[Checkpoint]:
        return await self.inner.checkpoints(chain)

    async def add_checkpoint(self, checkpoint: Checkpoint) -> None:
        self._check()
        await self.inner.add_checkpoint(checkpoint)

    async def query(self, query: AuditQuery) -> AuditPage:
        return await self.inner.query(query)

    async def first_seq_since(self, chain: str, since: datetime) -> int | None:
        return await self.inner.first_seq_since(chain, since)

    async def summary_rows(
        self, since: datetime, until: datetime, width_us: int
    ) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]:
        return await self.inner.summary_rows(since, until, width_us)

    async def delete_through(self, chain: str, seq: int, anchor: Checkpoint) -> int:
        return await self.inner.delete_through(chain, seq, anchor)


async def wait_until(condition: Any, timeout_s: float = 10.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout_s
    while not condition():
        assert asyncio.get_running_loop().time() < deadline, "condition not reached in time"
        await asyncio.sleep(0.02)


async def test_records_spool_while_the_sink_is_down_and_replay_in_order(
    backend: Backend,
) -> None:
    flaky = FlakyStore(backend.store(create=True))
    writer = backend.writer(store=flaky)
    async with writer:
        for number in range(1, 11):
            await writer.append(record(number))
        await writer.flush()
        flaky.down = True
        for number in range(11, 41):
            await writer.append(record(number))
        await writer.flush()
        assert not writer.sink_available
        assert writer.stats.spooled == 30
        assert (backend.directory / f"{backend.table}.spool").exists()
        flaky.down = False
        await wait_until(lambda: writer.sink_available)
        for number in range(41, 51):
            await writer.append(record(number))
    assert writer.stats.replayed == 30
    assert writer.stats.lost == 0
    assert not (backend.directory / f"{backend.table}.spool").exists()
    async with backend.store() as store:
        rows = await all_rows(store)
    assert [row.record.request_id for row in rows] == [f"req-{n}" for n in range(1, 51)]
    assert await verify(backend) == []


async def test_a_new_writer_replays_the_spool_left_by_a_previous_one(backend: Backend) -> None:
    flaky = FlakyStore(backend.store(create=True))
    first = backend.writer(store=flaky)
    async with first:
        await first.append(record(1))
        await first.flush()
        flaky.down = True
        for number in range(2, 21):
            await first.append(record(number))
    assert first.stats.spooled == 19
    # The store is still down at close: the spool stays for the next start.
    await write(backend, 5, first=21)
    async with backend.store() as store:
        rows = await all_rows(store)
    assert [row.seq for row in rows] == list(range(1, 26))
    assert await verify(backend) == []


async def test_a_writer_starts_on_its_spool_while_the_store_is_still_down(
    backend: Backend,
) -> None:
    flaky = FlakyStore(backend.store(create=True))
    async with backend.writer(store=flaky) as first:
        await first.append(record(1))
        await first.flush()
        flaky.down = True
        await first.append(record(2))
    flaky = FlakyStore(backend.store(create=True))
    flaky.down = True
    second = backend.writer(store=flaky)
    await second.start()
    assert second.tail[0] == 2
    await second.append(record(3))
    await second.flush()
    flaky.down = False
    await second.close()
    assert await verify(backend) == []
    async with backend.store() as store:
        assert [row.seq for row in await all_rows(store)] == [1, 2, 3]


async def test_without_store_or_spool_the_writer_refuses_to_start(backend: Backend) -> None:
    flaky = FlakyStore(backend.store(create=True))
    flaky.down = True
    with pytest.raises(AuditSinkError, match="no spool"):
        await backend.writer(store=flaky).start()


async def test_a_spool_behind_the_store_is_refused_at_start(backend: Backend) -> None:
    await write(backend, 5)
    other = ChainSealer(KEYS.hmac_key, "default")
    spool = Spool(backend.directory / f"{backend.table}.spool")
    await spool.append([other.seal(record(100 + number)) for number in range(3)], sync=False)
    with pytest.raises(ChainConflictError, match="another writer"):
        await backend.writer().start()


async def test_a_spool_that_contradicts_the_store_is_kept_not_replayed(
    backend: Backend,
) -> None:
    await write(backend, 5)
    other = ChainSealer(KEYS.hmac_key, "default", 4, b"\x09" * 32)
    spool = Spool(backend.directory / f"{backend.table}.spool")
    await spool.append([other.seal(record(200)), other.seal(record(201))], sync=False)
    writer = backend.writer()
    async with writer:
        await asyncio.sleep(0.2)
        assert not writer.sink_available
    assert spool.path.exists()
    async with backend.store() as store:
        assert [row.seq for row in await all_rows(store)] == [1, 2, 3, 4, 5]
    assert await verify(backend) == []


# -- durability ---------------------------------------------------------------------------


async def test_strict_append_returns_only_after_the_record_is_committed(
    backend: Backend,
) -> None:
    async with backend.writer(durability="strict") as writer, backend.store() as reader:
        seen: list[bool] = []

        async def one(number: int) -> None:
            await writer.append(record(number))
            page = await reader.query(
                AuditQuery(
                    since=START + timedelta(seconds=number),
                    until=START + timedelta(seconds=number + 1),
                )
            )
            seen.append([row.record.request_id for row in page.records] == [f"req-{number}"])

        await asyncio.gather(*(one(number) for number in range(1, 101)))
    assert seen == [True] * 100
    # Group commit: concurrent requests share commits.
    assert writer.stats.batches < 100
    assert await verify(backend) == []


async def test_strict_deny_mode_fails_the_request_but_keeps_the_record(
    backend: Backend,
) -> None:
    flaky = FlakyStore(backend.store(create=True))
    writer = backend.writer(store=flaky, durability="strict", on_sink_error="deny")
    async with writer:
        await writer.append(record(1))
        flaky.down = True
        with pytest.raises(AuditUnavailableError):
            await writer.append(record(2))
        flaky.down = False
        await wait_until(lambda: writer.sink_available)
        await writer.append(record(3))
    async with backend.store() as store:
        assert [row.seq for row in await all_rows(store)] == [1, 2, 3]
    assert await verify(backend) == []


async def test_batched_records_are_committed_without_an_explicit_flush(
    backend: Backend,
) -> None:
    async with backend.writer() as writer, backend.store() as reader:
        await writer.append(record(1))
        started = asyncio.get_running_loop().time()
        for _ in range(500):
            if (await reader.query(AuditQuery())).records:
                break
            await asyncio.sleep(0.01)
        elapsed = asyncio.get_running_loop().time() - started
    assert elapsed < 1.0  # the bound is 100 ms; slack for a loaded machine


async def test_a_full_queue_makes_append_wait_instead_of_dropping(backend: Backend) -> None:
    writer = backend.writer(max_batch=10, max_queue=20)
    async with writer:
        await asyncio.gather(*(writer.append(record(number)) for number in range(1, 201)))
    assert writer.stats.committed == 200
    assert await verify(backend) == []


async def test_append_after_close_is_refused(backend: Backend) -> None:
    writer = await write(backend, 1)
    with pytest.raises(AuditUnavailableError, match="closed"):
        await writer.append(record(2))


async def test_summary_counts_requests_refusals_and_latency_per_bucket(backend: Backend) -> None:
    await write(backend, 100)  # records 1..100, one a second from START+1s
    extra = [
        record(101, route="admin:reload", decision="deny", reason="admin.failed"),
        record(102, status=502, reason="upstream.connect_failed", decision="deny"),
    ]
    writer = backend.writer()
    async with writer:
        for item in extra:
            await writer.append(item)
    async with backend.store() as store:
        summary = await store.summary(START, START + timedelta(seconds=200), 4)
        by_route = await all_rows(store, route="admin:reload")
    assert summary.bucket_us == 50_000_000
    assert [bucket.requests for bucket in summary.buckets] == [49, 50, 2, 0]  # admin left out
    assert summary.requests == 101
    assert summary.refused == 20 + 1
    assert summary.upstream_errors == 1
    assert summary.reasons == {"waf.sqli": 10, "auth.invalid_key": 10, "upstream.connect_failed": 1}
    assert summary.routes["accounts"] == [101, 21]
    assert summary.consumers["alice"] == [50, 10]  # the odd numbers; 101 is an admin action
    # Latency 1001..1102 µs: every record is in the 1-2 ms bucket.
    assert summary.latency_percentile(0.5) == 2_000
    assert summary.latency_percentile(0.99) == 2_000
    assert [row.record.request_id for row in by_route] == ["req-101"]


async def test_the_summary_cache_agrees_with_the_database_and_takes_in_new_records(
    backend: Backend,
) -> None:
    from dijk.audit.summary import SummaryCache

    await write(backend, 400)  # one a second from START + 1 s
    cache = SummaryCache(lag_s=60)
    since, until = START, START + timedelta(seconds=300)
    async with backend.store() as store:
        direct = await store.summary(since, until, 5)
        first = await cache.summary(store, since, until, 5)
        again = await cache.summary(store, since, until, 5)  # from the cache this time
    for summary in (first, again):
        assert summary.requests == direct.requests == 299
        assert summary.refused == direct.refused
        assert summary.reasons == direct.reasons
        assert summary.routes == direct.routes
        assert summary.consumers == direct.consumers
        assert [b.requests for b in summary.buckets] == [b.requests for b in direct.buckets]
        assert summary.latency_percentile(0.99) == direct.latency_percentile(0.99)
    later = START + timedelta(seconds=500)
    async with backend.store() as store:
        moved = await cache.summary(store, since, later, 5)
        fresh = await store.summary(since, later, 5)
    assert moved.requests == fresh.requests == 400
    assert moved.reasons == fresh.reasons
