"""Durability under real failures: a writer process killed with SIGKILL, and a PostgreSQL
server that disappears behind a TCP proxy and comes back."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import textwrap
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from urllib.parse import urlsplit

import asyncpg  # type: ignore[import-untyped]
import pytest

from dijk.audit.chain import verify_store
from dijk.audit.store import AuditQuery, AuditStore, open_store
from dijk.audit.writer import AuditWriter
from tests.integration.test_audit_contract import KEYS, postgres_url, record, wait_until
from tests.support.tcp_proxy import TcpProxy

SECRET = "contract-suite-secret-0123456789abcdef"

CHILD = textwrap.dedent(
    """
    import asyncio, sys
    from datetime import UTC, datetime
    from pathlib import Path
    from dijk.audit import AuditKeys, AuditRecord, AuditWriter, open_store

    async def main(url, spool, durability, answered_path):
        keys = AuditKeys.from_secret(sys.argv[5].encode())
        store = open_store(url, create=True, durable=durability == "strict")
        writer = AuditWriter(store, keys, spool_path=Path(spool), durability=durability)
        await writer.start()
        answered = open(answered_path, "a", buffering=1)
        counter = 0

        async def request():
            nonlocal counter
            while True:
                counter += 1
                number = counter
                await writer.append(AuditRecord(
                    time=datetime.now(UTC), request_id=f"r{number}", method="GET",
                    status=200, decision="allow"))
                answered.write(f"r{number}\\n")
                await asyncio.sleep(0)  # sending the response: the event loop turns

        print("ready", flush=True)
        await asyncio.gather(*(request() for _ in range(32)))

    asyncio.run(main(*sys.argv[1:5]))
    """
)


async def stored_request_ids(store: AuditStore) -> set[str]:
    found: set[str] = set()
    cursor = None
    while True:
        page = await store.query(AuditQuery(limit=5000, cursor=cursor))
        found.update(row.record.request_id for row in page.records)
        if page.next_cursor is None:
            return found
        cursor = page.next_cursor


async def audit_url(kind: str, tmp_path: Path) -> tuple[str, str | None]:
    table = f"audit_{uuid.uuid4().hex[:12]}"
    if kind == "sqlite":
        return f"sqlite:///{tmp_path / 'audit.db'}?table={table}", None
    base = await postgres_url()
    return f"{base}?table={table}", table


async def drop(table: str | None) -> None:
    if table is None:
        return
    connection = await asyncpg.connect(await postgres_url())
    try:
        await connection.execute(f"DROP TABLE IF EXISTS {table}, {table}_checkpoint")
    finally:
        await connection.close()


def kill_writer_under_load(url: str, tmp_path: Path, durability: str, run_s: float) -> set[str]:
    """Run a writer process under load, SIGKILL it, return the request ids it answered."""
    answered = tmp_path / f"answered-{durability}.txt"
    script = tmp_path / "child.py"
    script.write_text(CHILD)
    spool = tmp_path / f"{durability}.spool"
    child = subprocess.Popen(
        [sys.executable, str(script), url, str(spool), durability, str(answered), SECRET],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert child.stdout is not None
        line = child.stdout.readline()
        assert line.strip() == "ready", child.stderr.read() if child.stderr else line
        with contextlib.suppress(subprocess.TimeoutExpired):
            child.wait(timeout=run_s)
        assert child.poll() is None, "the writer process died on its own"
        os.kill(child.pid, signal.SIGKILL)
        child.wait(timeout=10)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    return set(answered.read_text().split())


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
async def test_sigkill_in_strict_mode_loses_no_answered_request(kind: str, tmp_path: Path) -> None:
    url, table = await audit_url(kind, tmp_path)
    try:
        answered = await asyncio.to_thread(kill_writer_under_load, url, tmp_path, "strict", 1.5)
        assert len(answered) > 50, "too little load to mean anything"
        async with open_store(url) as store:
            stored = await stored_request_ids(store)
            report = await verify_store(store, KEYS)
        missing = answered - stored
        assert not missing, f"{len(missing)} answered requests have no record"
        assert report.intact, report.chains[0].problems
        # The chain goes on after the crash.
        writer = AuditWriter(
            open_store(url, create=True), KEYS, spool_path=tmp_path / "strict.spool"
        )
        async with writer:
            await writer.append(record(1))
        async with open_store(url) as store:
            assert (await verify_store(store, KEYS)).intact
    finally:
        await drop(table)


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
async def test_sigkill_in_batched_mode_reports_what_was_lost(
    kind: str, tmp_path: Path, record_property: Callable[[str, object], None]
) -> None:
    url, table = await audit_url(kind, tmp_path)
    try:
        answered = await asyncio.to_thread(kill_writer_under_load, url, tmp_path, "batched", 1.5)
        async with open_store(url) as store:
            stored = await stored_request_ids(store)
            report = await verify_store(store, KEYS)
        lost = len(answered - stored)
        record_property("batched_lost", lost)
        record_property("batched_answered", len(answered))
        print(
            f"\nbatched mode, {kind}: {lost} of {len(answered)} answered requests lost on SIGKILL"
        )
        assert report.intact  # a cut tail without newer checkpoint: nothing half-written
        assert lost <= len(answered)
    finally:
        await drop(table)


@pytest.fixture
async def proxy() -> AsyncIterator[TcpProxy]:
    base = urlsplit(await postgres_url())
    forwarder = TcpProxy(base.hostname or "127.0.0.1", base.port or 5432)
    await forwarder.start()
    yield forwarder
    if forwarder.server is not None:
        await forwarder.stop()


async def proxied_url(proxy: TcpProxy) -> tuple[str, str]:
    """A fresh table's URL through ``proxy`` (cut it for an outage), and the table."""
    base = urlsplit(await postgres_url())
    table = f"audit_{uuid.uuid4().hex[:12]}"
    return f"postgresql://{base.username}@127.0.0.1:{proxy.port}{base.path}?table={table}", table


@pytest.mark.postgres
async def test_a_postgres_outage_spools_and_replays_when_it_returns(
    proxy: TcpProxy, tmp_path: Path
) -> None:
    url, table = await proxied_url(proxy)
    writer = AuditWriter(
        open_store(url, create=True),
        KEYS,
        spool_path=tmp_path / "outage.spool",
        sink_timeout_s=3.0,
        retry_interval_s=0.1,
    )
    try:
        async with writer:
            for number in range(1, 11):
                await writer.append(record(number))
            await writer.flush()
            await proxy.stop()
            for number in range(11, 31):
                await writer.append(record(number))
            await writer.flush()
            assert not writer.sink_available
            assert writer.stats.spooled == 20
            await proxy.start()
            await wait_until(lambda: writer.sink_available, timeout_s=20)
            for number in range(31, 41):
                await writer.append(record(number))
        assert writer.stats.lost == 0
        direct = f"{await postgres_url()}?table={table}"
        async with open_store(direct) as store:
            ids = await stored_request_ids(store)
            report = await verify_store(store, KEYS)
        assert ids == {f"req-{number}" for number in range(1, 41)}
        assert report.intact
    finally:
        await drop(table)


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
async def test_the_tail_left_by_a_crash_is_sealed_at_the_next_start(
    kind: str, tmp_path: Path
) -> None:
    """SIGKILL between two checkpoints, restart, clean stop, no new traffic: the records
    written since the last checkpoint before the crash are anchored by a signed one."""
    url, table = await audit_url(kind, tmp_path)
    try:
        answered = await asyncio.to_thread(kill_writer_under_load, url, tmp_path, "strict", 1.0)
        assert answered
        async with open_store(url) as store:
            before = await verify_store(store, KEYS)
            anchored = max((anchor.seq for anchor in await store.checkpoints()), default=0)
        assert anchored < before.chains[0].last_seq  # the crash left the tail unanchored
        writer = AuditWriter(
            open_store(url, create=True), KEYS, spool_path=tmp_path / "strict.spool"
        )
        async with writer:
            pass  # restart and a clean stop, no request in between
        async with open_store(url) as store:
            report = await verify_store(store, KEYS)
            anchors = await store.checkpoints()
        assert report.intact, report.chains[0].problems
        assert report.chains[0].checkpoints >= 1
        assert max(anchor.seq for anchor in anchors) == report.chains[0].last_seq
    finally:
        await drop(table)


@pytest.mark.slow
@pytest.mark.postgres
async def test_strict_deny_recovers_promptly_when_postgres_returns(
    proxy: TcpProxy, tmp_path: Path
) -> None:
    """With the writer's default retry settings, requests stop being refused within about a
    second of the database answering again, even after an outage of several seconds."""
    from dijk.audit.writer import AuditUnavailableError

    url, table = await proxied_url(proxy)
    writer = AuditWriter(
        open_store(url, create=True),
        KEYS,
        spool_path=tmp_path / "deny.spool",
        durability="strict",
        on_sink_error="deny",
    )
    loop = asyncio.get_running_loop()
    number = 0

    async def request() -> bool:
        nonlocal number
        number += 1
        try:
            await writer.append(record(number))
        except AuditUnavailableError:
            return False
        return True

    try:
        async with writer:
            assert await request()
            await proxy.stop()
            outage_ends = loop.time() + 8.0
            refused = 0
            while loop.time() < outage_ends:
                refused += not await request()
                await asyncio.sleep(0.1)
            assert refused > 0
            assert not writer.sink_available
            await proxy.start()
            back = loop.time()
            while not await request():
                assert loop.time() - back < 10, "never recovered"
                await asyncio.sleep(0.05)
            recovered_after = loop.time() - back
        print(f"\nstrict+deny: answered again {recovered_after:.2f} s after PostgreSQL returned")
        assert recovered_after < 2.5
        assert writer.stats.lost == 0
        direct = f"{await postgres_url()}?table={table}"
        async with open_store(direct) as store:
            assert (await verify_store(store, KEYS)).intact
    finally:
        await drop(table)
