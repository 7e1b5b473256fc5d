"""Audit writer throughput: records/s through ``AuditWriter`` into SQLite and PostgreSQL.

    .venv/bin/python -m bench.audit              # 3 interleaved rounds of 100k records
    .venv/bin/python -m bench.audit --quick      # smoke run: 1 round of 20k records
    options: --records N --rounds N --postgres URL --skip-postgres

For each backend, in one run:

* ``writer batched``: the full path the gateway uses (queue, hash chain, group commit,
  checkpoints), one producer appending as fast as it can; the clock stops when ``close()``
  has committed everything.
* ``writer strict``: ``--concurrency`` producers, each waiting for its commit (the
  strict-durability path, group commit shared between them).
* ``raw store``: the same rows, already sealed, handed straight to the store in batches of
  the same size. The ceiling the database and driver allow on this machine, measured side
  by side, so the writer's own cost is visible.

Goals (issue 8): writer batched >= 50k records/s on SQLite, >= 100k records/s on
PostgreSQL. Reported as the median of interleaved rounds with the min-max spread
(bench/_harness.py conventions). Prints a table and writes JSON to
bench/results/audit-latest.json (and a time-stamped copy).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sqlite3
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a file: python bench/audit.py
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._harness import (
    RESULTS_DIR,
    Spread,
    format_table,
    machine_info,
    utc_timestamp,
    write_results,
)
from dijk.audit.chain import ChainSealer
from dijk.audit.keys import AuditKeys
from dijk.audit.record import AuditRecord, Finding
from dijk.audit.store import open_store
from dijk.audit.writer import AuditWriter

GOALS = {"sqlite": 50_000, "postgresql": 100_000}
PATHS = ("writer_batched", "writer_strict", "raw_store")
KEYS = AuditKeys.from_secret(b"benchmark-secret-not-for-production!")


def make_records(count: int) -> list[AuditRecord]:
    """Realistic records: a mix of allowed and denied requests, some with findings."""
    start = datetime.now(UTC) - timedelta(hours=1)
    records = []
    for number in range(count):
        denied = number % 10 == 0
        records.append(
            AuditRecord(
                time=start + timedelta(microseconds=number * 37),
                request_id=f"{uuid.UUID(int=number).hex}",
                method="POST" if number % 4 == 0 else "GET",
                status=403 if denied else 200,
                decision="deny" if denied else "allow",
                route="accounts",
                path_template="/api/v1/accounts/{id}",
                reason="waf.sqli" if denied else None,
                consumer=f"consumer-{number % 50}",
                auth_method="api_key",
                credential_id=f"{number % 97:016x}",
                client_ip=f"{number % 1000:032x}",
                findings=(Finding("942100", "$.name"),) if denied else (),
                gateway_latency_us=900 + number % 500,
                upstream_latency_us=None if denied else 700 + number % 400,
                bytes_in=120 + number % 50,
                bytes_out=2048 + number % 300,
                pii_categories=("email", "iban") if number % 7 == 0 else (),
            )
        )
    return records


async def writer_batched(url: str, records: list[AuditRecord], spool: Path) -> dict[str, Any]:
    writer = AuditWriter(open_store(url, create=True, durable=False), KEYS, spool_path=spool)
    await writer.start()
    started = time.perf_counter()
    for item in records:
        await writer.append(item)
    await writer.close()
    elapsed = time.perf_counter() - started
    stats = writer.stats
    assert stats.committed == len(records), stats
    return {
        "records": len(records),
        "seconds": round(elapsed, 3),
        "records_per_s": round(len(records) / elapsed),
        "commits": stats.batches,
        "mean_batch": round(stats.committed / max(1, stats.batches)),
    }


async def writer_strict(
    url: str, records: list[AuditRecord], spool: Path, concurrency: int
) -> dict[str, Any]:
    writer = AuditWriter(
        open_store(url, create=True, durable=True), KEYS, spool_path=spool, durability="strict"
    )
    await writer.start()
    chunks = [records[index::concurrency] for index in range(concurrency)]

    async def producer(chunk: list[AuditRecord]) -> None:
        for item in chunk:
            await writer.append(item)

    started = time.perf_counter()
    await asyncio.gather(*(producer(chunk) for chunk in chunks))
    await writer.close()
    elapsed = time.perf_counter() - started
    stats = writer.stats
    return {
        "records": len(records),
        "concurrency": concurrency,
        "seconds": round(elapsed, 3),
        "records_per_s": round(len(records) / elapsed),
        "commits": stats.batches,
        "mean_batch": round(stats.committed / max(1, stats.batches)),
    }


async def raw_store(url: str, records: list[AuditRecord], batch: int) -> dict[str, Any]:
    sealer = ChainSealer(KEYS.hmac_key, "raw")
    sealed = [sealer.seal(item) for item in records]
    store = open_store(url, create=True, durable=False)
    await store.connect()
    started = time.perf_counter()
    for index in range(0, len(sealed), batch):
        await store.append(sealed[index : index + batch])
    elapsed = time.perf_counter() - started
    await store.close()
    return {
        "records": len(records),
        "seconds": round(elapsed, 3),
        "records_per_s": round(len(records) / elapsed),
    }


async def drop_postgres(url: str, table: str) -> None:
    import asyncpg  # type: ignore[import-untyped]

    connection = await asyncpg.connect(url)
    try:
        await connection.execute(f"DROP TABLE IF EXISTS {table}, {table}_checkpoint")
    finally:
        await connection.close()


async def postgres_version(url: str) -> str | None:
    import asyncpg

    try:
        connection = await asyncpg.connect(url, timeout=3)
    except (OSError, asyncpg.PostgresError, TimeoutError) as exc:
        print(f"PostgreSQL not reachable at {url}: {exc}", file=sys.stderr)
        return None
    try:
        return str(await connection.fetchval("SHOW server_version"))
    finally:
        await connection.close()


async def run_once(
    kind: str, base: str, path: str, records: list[AuditRecord], options: argparse.Namespace
) -> dict[str, Any]:
    """One measurement in a fresh table (and, for SQLite, a fresh file)."""
    with tempfile.TemporaryDirectory(prefix="dijk-bench-audit-") as directory:
        folder = Path(directory)
        table = f"bench_{uuid.uuid4().hex[:10]}"
        if kind == "sqlite":
            url = f"sqlite:///{folder / (table + '.db')}?table={table}"
        else:
            url = f"{base}?table={table}"
        spool = folder / f"{table}.spool"
        try:
            if path == "writer_batched":
                return await writer_batched(url, records, spool)
            if path == "writer_strict":
                strict = records[: options.strict_records]
                return await writer_strict(url, strict, spool, options.concurrency)
            return await raw_store(url, records, 5000)
        finally:
            if kind == "postgresql":
                await drop_postgres(base, table)


def summarise(runs: list[dict[str, Any]]) -> dict[str, Any]:
    spread = Spread.of([run["records_per_s"] for run in runs])
    assert spread is not None
    return {
        "records_per_s_median": round(spread.median),
        "records_per_s_min": round(spread.minimum),
        "records_per_s_max": round(spread.maximum),
        "rounds": runs,
    }


def print_table(backends: dict[str, Any]) -> None:
    headers = ["backend", "path", "records", "records/s (median)", "min-max", "mean batch", "goal"]
    rows = []
    for kind, by_path in backends.items():
        for path in PATHS:
            summary = by_path[path]
            first = summary["rounds"][0]
            goal = ""
            if path == "writer_batched":
                mark = "met" if by_path["goal_met"] else "NOT met"
                goal = f">= {by_path['goal_records_per_s']:,}/s {mark}"
            label = path.replace("_", " ")
            if path == "writer_strict":
                label += f" x{first['concurrency']}"
            rows.append(
                [
                    kind,
                    label,
                    str(first["records"]),
                    f"{summary['records_per_s_median']:,}",
                    f"{summary['records_per_s_min']:,}-{summary['records_per_s_max']:,}",
                    str(first.get("mean_batch", "")),
                    goal,
                ]
            )
    print(format_table(headers, rows, right={2, 3, 4, 5}))


async def main() -> int:
    parser = argparse.ArgumentParser(description="Audit writer throughput (issue 8).")
    parser.add_argument("--records", type=int, default=100_000)
    parser.add_argument("--strict-records", type=int, default=20_000)
    parser.add_argument("--concurrency", type=int, default=256)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="1 round of 20k records")
    parser.add_argument(
        "--postgres",
        default=os.environ.get(
            "DIJK_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test"
        ),
    )
    parser.add_argument("--skip-postgres", action="store_true")
    parser.add_argument("--results", type=Path, default=RESULTS_DIR)
    options = parser.parse_args()
    if options.quick:
        options.records, options.strict_records, options.rounds = 20_000, 5_000, 1

    machine = machine_info({}, ["aiosqlite", "asyncpg", "orjson", "cryptography"])
    machine["sqlite"] = sqlite3.sqlite_version
    kinds = {"sqlite": ""}
    if not options.skip_postgres:
        version = await postgres_version(options.postgres)
        if version is not None:
            machine["postgresql"] = version
            kinds["postgresql"] = options.postgres
    records = make_records(options.records)
    runs: dict[str, dict[str, list[dict[str, Any]]]] = {
        kind: {path: [] for path in PATHS} for kind in kinds
    }
    for round_number in range(1, options.rounds + 1):
        for kind, base in kinds.items():  # interleaved: each round measures every cell once
            for path in PATHS:
                result = await run_once(kind, base, path, records, options)
                runs[kind][path].append(result)
                print(
                    f"round {round_number}: {kind:<10} {path:<15}"
                    f" {result['records_per_s']:>8,} records/s",
                    flush=True,
                )
    backends: dict[str, Any] = {}
    for kind, by_path in runs.items():
        summary: dict[str, Any] = {path: summarise(by_path[path]) for path in PATHS}
        summary["goal_records_per_s"] = GOALS[kind]
        summary["goal_met"] = summary["writer_batched"]["records_per_s_median"] >= GOALS[kind]
        backends[kind] = summary
    machine["load_average_at_end"] = list(os.getloadavg())
    when, stamp = utc_timestamp()
    results = {
        "benchmark": "audit-writer",
        "time": when,
        "machine": machine,
        "settings": {
            "records": options.records,
            "strict_records": options.strict_records,
            "rounds": options.rounds,
            "max_batch": 5000,
            "max_queue": 20000,
            "flush_interval_ms": 100,
            "sqlite_synchronous": "NORMAL (batched), FULL (strict)",
        },
        "backends": backends,
    }
    print()
    print_table(backends)
    print(
        f"\nload average (1 min) at start / end: {machine['load_average_at_start'][0]:.2f}"
        f" / {machine['load_average_at_end'][0]:.2f} on {machine['nproc']} CPUs"
    )
    for written in write_results(options.results, "audit", stamp, results):
        print(f"written to {written}")
    return 0


if __name__ == "__main__":
    raise SystemExit(asyncio.run(main()))
