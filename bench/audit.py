"""Audit throughput: records/s through ``AuditWriter`` into SQLite and PostgreSQL, and the
gateway's requests/s with the audit log off, batched and strict, in one run.

    .venv/bin/python -m bench.audit              # 3 interleaved rounds of 100k records
    .venv/bin/python -m bench.audit --quick      # smoke run: 1 round of 20k records
    options: --records N --rounds N --postgres URL --skip-postgres
             --skip-gateway --gateway-duration S --connections N --no-pin

For each backend, in one run:

* ``writer batched``: the full path the gateway uses (queue, hash chain, group commit,
  checkpoints), one producer appending as fast as it can; the clock stops when ``close()``
  has committed everything.
* ``writer strict``: ``--concurrency`` producers, each waiting for its commit (the
  strict-durability path, group commit shared between them).
* ``raw store``: the same rows, already sealed, handed straight to the store in batches of
  the same size. The ceiling the database and driver allow on this machine, measured side
  by side, so the writer's own cost is visible.

Gateway (``dijk serve`` in front of an nginx upstream answering a fixed body, driven by
wrk; target and load side pinned to different CPUs when possible, as in bench/proxy.py):
the same route with ``audit.enabled: false``, with the default batched SQLite log, with
``durability: strict`` (and batched PostgreSQL when it is reachable). Reported per mode:
req/s (median, min-max), the change against audit off, p99 latency and the gateway's own
CPU time per request, which survives a noisy machine better than req/s. After the run
every audited gateway is stopped with SIGTERM and its records are counted: at least one
per request wrk completed, or the row is flagged.

Goals: writer batched >= 50k records/s on SQLite, >= 100k records/s on
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
import textwrap
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a file: python bench/audit.py
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._harness import (
    RESULTS_DIR,
    ROOT,
    Pinning,
    Service,
    ServiceGroup,
    Spread,
    ensure_tool,
    format_table,
    free_port,
    machine_info,
    run_wrk,
    sigterm_as_interrupt,
    utc_timestamp,
    wait_until_serving,
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
    started, cpu = time.perf_counter(), time.process_time()
    for item in records:
        await writer.append(item)
    await writer.close()
    elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu
    stats = writer.stats
    assert stats.committed == len(records), stats
    return {
        "records": len(records),
        "seconds": round(elapsed, 3),
        "records_per_s": round(len(records) / elapsed),
        "cpu_us_per_record": round(cpu / len(records) * 1e6, 1),
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

    started, cpu = time.perf_counter(), time.process_time()
    await asyncio.gather(*(producer(chunk) for chunk in chunks))
    await writer.close()
    elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu
    stats = writer.stats
    return {
        "records": len(records),
        "concurrency": concurrency,
        "seconds": round(elapsed, 3),
        "records_per_s": round(len(records) / elapsed),
        "cpu_us_per_record": round(cpu / len(records) * 1e6, 1),
        "commits": stats.batches,
        "mean_batch": round(stats.committed / max(1, stats.batches)),
    }


async def raw_store(url: str, records: list[AuditRecord], batch: int) -> dict[str, Any]:
    sealer = ChainSealer(KEYS.hmac_key, "raw")
    sealed = [sealer.seal(item) for item in records]
    store = open_store(url, create=True, durable=False)
    await store.connect()
    started, cpu = time.perf_counter(), time.process_time()
    for index in range(0, len(sealed), batch):
        await store.append(sealed[index : index + batch])
    elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu
    await store.close()
    return {
        "records": len(records),
        "seconds": round(elapsed, 3),
        "records_per_s": round(len(records) / elapsed),
        "cpu_us_per_record": round(cpu / len(records) * 1e6, 1),
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


# --- gateway: requests/s with the audit log off, batched, strict ---------------------------

HOST = "127.0.0.1"
GATEWAY_PATH = "/bench/accounts"
GATEWAY_BODY = b'{"status":"ok"}'
GATEWAY_SECRET = "benchmark-audit-secret-not-for-production"


def _nginx_argv(nginx: str, temp: Path, port: int) -> list[str]:
    state = temp / "nginx"
    state.mkdir(parents=True, exist_ok=True)
    conf = state / "nginx.conf"
    conf.write_text(
        textwrap.dedent(
            f"""\
            daemon off;
            master_process on;
            worker_processes 1;
            pid {state}/nginx.pid;
            error_log {state}/error.log warn;
            events {{ worker_connections 4096; }}
            http {{
                access_log off;
                client_body_temp_path {state}/client_body;
                proxy_temp_path {state}/proxy;
                fastcgi_temp_path {state}/fastcgi;
                uwsgi_temp_path {state}/uwsgi;
                scgi_temp_path {state}/scgi;
                keepalive_requests 1000000;
                keepalive_timeout 75s;
                server {{
                    listen {HOST}:{port} backlog=4096;
                    location / {{
                        default_type application/json;
                        return 200 '{GATEWAY_BODY.decode()}';
                    }}
                }}
            }}
            """
        )
    )
    return [nginx, "-p", str(state), "-e", str(state / "error.log"), "-c", str(conf)]


def gateway_modes(postgres: str | None) -> dict[str, str]:
    """Mode name -> the ``audit:`` section of its configuration (YAML flow style)."""
    modes = {
        "audit off": "{enabled: false}",
        "audit batched (sqlite)": '{url: "sqlite:///./audit.db"}',
        "audit strict (sqlite)": '{url: "sqlite:///./audit.db", durability: strict}',
    }
    if postgres:
        table = f"bench_gw_{uuid.uuid4().hex[:10]}"
        modes["audit batched (postgresql)"] = f'{{url: "{postgres}?table={table}"}}'
    return modes


def _gateway_config(port: int, admin_port: int, upstream_port: int, audit: str) -> str:
    return textwrap.dedent(
        f"""\
        version: 1
        listen: {{address: {HOST}, port: {port}}}
        admin: {{address: {HOST}, port: {admin_port}}}
        audit: {audit}
        upstreams:
          fixed: {{url: "http://{HOST}:{upstream_port}"}}
        routes:
          - name: accounts
            match: {{path_prefix: /bench}}
            upstream: fixed
        """
    )


def _count_records(directory: Path, audit: str) -> int | None:
    database = directory / "audit.db"
    if "sqlite" not in audit or not database.exists():
        return None
    with sqlite3.connect(database) as connection:
        return int(connection.execute("SELECT count(*) FROM dijk_audit").fetchone()[0])


def run_gateway_bench(options: argparse.Namespace, postgres: str | None) -> dict[str, Any]:
    """Interleaved wrk rounds against one gateway per audit mode; a summary per mode."""
    nginx = ensure_tool("nginx", "nginx")
    wrk = ensure_tool("wrk", "wrk")
    pinning = Pinning.choose(not options.no_pin)
    executable = ROOT / ".venv" / "bin" / "dijk"
    modes = gateway_modes(postgres)
    runs: dict[str, list[dict[str, Any]]] = {mode: [] for mode in modes}
    services: dict[str, Service] = {}
    directories: dict[str, Path] = {}
    ports: dict[str, int] = {}
    records: dict[str, int | None] = {}
    with (
        tempfile.TemporaryDirectory(prefix="dijk-bench-audit-gw-") as directory,
        ServiceGroup() as group,
    ):
        temp = Path(directory)
        upstream_port = free_port()
        upstream = Service(
            "nginx", pinning.load(_nginx_argv(nginx, temp, upstream_port)), temp / "nginx.log"
        )
        group.start(upstream)
        env = {**os.environ, "DIJK_AUDIT_KEY": GATEWAY_SECRET}
        for index, (mode, audit) in enumerate(modes.items()):
            folder = temp / f"gateway-{index}"
            folder.mkdir()
            port, admin_port = free_port(), free_port()
            (folder / "dijk.yaml").write_text(
                _gateway_config(port, admin_port, upstream_port, audit)
            )
            service = Service(
                mode,
                pinning.target([str(executable), "serve", "-c", str(folder / "dijk.yaml")]),
                folder / "gateway.log",
                cwd=folder,
                env=env,
            )
            group.start(service)
            problem = wait_until_serving(service, HOST, port, GATEWAY_PATH, GATEWAY_BODY)
            if problem is not None:
                raise SystemExit(f"gateway {mode!r} did not start: {problem}")
            services[mode] = service
            directories[mode] = folder
            ports[mode] = port
        for round_number in range(1, options.rounds + 1):
            for mode, service in services.items():
                url = f"http://{HOST}:{ports[mode]}{GATEWAY_PATH}"
                run_wrk(
                    wrk,
                    url,
                    duration_s=1,
                    connections=options.connections,
                    threads=1,
                    pinning=pinning,
                )
                cpu_before = service.cpu_seconds()
                result = run_wrk(
                    wrk,
                    url,
                    duration_s=options.gateway_duration,
                    connections=options.connections,
                    threads=1,
                    pinning=pinning,
                )
                cpu_after = service.cpu_seconds()
                row = result.to_json()
                if cpu_before is not None and cpu_after is not None and result.requests:
                    row["cpu_us_per_request"] = round(
                        (cpu_after - cpu_before) / result.requests * 1e6, 1
                    )
                runs[mode].append(row)
                print(
                    f"round {round_number}: gateway {mode:<28} {result.requests_per_s:>9,.0f} req/s"
                    f"  p99 {result.p99_ms} ms  errors {result.errors}",
                    flush=True,
                )
        for mode, service in services.items():
            group.stop(service)  # SIGTERM: the audit log is flushed and closed
            records[mode] = _count_records(directories[mode], modes[mode])
    summary: dict[str, Any] = {}
    baseline = Spread.of([run["requests_per_s"] for run in runs["audit off"]])
    for mode, mode_runs in runs.items():
        spread = Spread.of([run["requests_per_s"] for run in mode_runs])
        assert spread is not None
        cpu = [run["cpu_us_per_request"] for run in mode_runs if "cpu_us_per_request" in run]
        p99 = [run["p99_ms"] for run in mode_runs if run["p99_ms"] is not None]
        # wrk counts completed responses; warm-up and probe requests come on top.
        completed = sum(run["requests"] for run in mode_runs)
        summary[mode] = {
            "requests_per_s_median": round(spread.median),
            "requests_per_s_min": round(spread.minimum),
            "requests_per_s_max": round(spread.maximum),
            "vs_audit_off": round(spread.median / baseline.median - 1, 4) if baseline else None,
            "p99_ms_median": sorted(p99)[len(p99) // 2] if p99 else None,
            "cpu_us_per_request_median": sorted(cpu)[len(cpu) // 2] if cpu else None,
            "errors": sum(run["errors"] for run in mode_runs),
            "requests_measured": completed,
            "records_after_sigterm": records.get(mode),
            "rounds": mode_runs,
        }
    return {
        "pinning": pinning.reason,
        "connections": options.connections,
        "duration_s": options.gateway_duration,
        "modes": summary,
    }


def print_gateway_table(gateway: dict[str, Any]) -> None:
    headers = ["gateway", "req/s (median)", "min-max", "vs off", "p99 ms", "CPU us/req", "records"]
    rows = []
    for mode, summary in gateway["modes"].items():
        change = summary["vs_audit_off"]
        recorded = summary["records_after_sigterm"]
        check = ""
        if recorded is not None:
            check = f"{recorded:,}" + ("" if recorded >= summary["requests_measured"] else " (!)")
        rows.append(
            [
                mode,
                f"{summary['requests_per_s_median']:,}",
                f"{summary['requests_per_s_min']:,}-{summary['requests_per_s_max']:,}",
                "" if mode == "audit off" or change is None else f"{100 * change:+.1f} %",
                str(summary["p99_ms_median"]),
                str(summary["cpu_us_per_request_median"]),
                check,
            ]
        )
    print(format_table(headers, rows, right={1, 2, 3, 4, 5, 6}))
    print(f"wrk -c{gateway['connections']} -d{gateway['duration_s']}s; {gateway['pinning']}")


def summarise(runs: list[dict[str, Any]]) -> dict[str, Any]:
    spread = Spread.of([run["records_per_s"] for run in runs])
    cpu = Spread.of([run["cpu_us_per_record"] for run in runs])
    assert spread is not None
    assert cpu is not None
    return {
        "records_per_s_median": round(spread.median),
        "records_per_s_min": round(spread.minimum),
        "records_per_s_max": round(spread.maximum),
        # This process's CPU (event loop and driver threads; not the PostgreSQL server).
        "cpu_us_per_record_median": round(cpu.median, 1),
        "rounds": runs,
    }


def print_table(backends: dict[str, Any]) -> None:
    headers = [
        "backend",
        "path",
        "records",
        "records/s (median)",
        "min-max",
        "CPU us/rec",
        "mean batch",
        "goal",
    ]
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
                    str(summary["cpu_us_per_record_median"]),
                    str(first.get("mean_batch", "")),
                    goal,
                ]
            )
    print(format_table(headers, rows, right={2, 3, 4, 5, 6}))


async def main() -> int:
    parser = argparse.ArgumentParser(description="Audit writer throughput.")
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
    parser.add_argument("--skip-gateway", action="store_true", help="writer benchmark only")
    parser.add_argument("--skip-writer", action="store_true", help="gateway benchmark only")
    parser.add_argument("--gateway-duration", type=int, default=5, help="wrk seconds per run")
    parser.add_argument("--connections", type=int, default=64, help="wrk -c for the gateway")
    parser.add_argument("--no-pin", action="store_true", help="do not use taskset")
    parser.add_argument("--results", type=Path, default=RESULTS_DIR)
    options = parser.parse_args()
    if options.quick:
        options.records, options.strict_records, options.rounds = 20_000, 5_000, 1
        options.gateway_duration = 2

    machine = machine_info({}, ["aiosqlite", "asyncpg", "orjson", "cryptography"])
    machine["sqlite"] = sqlite3.sqlite_version
    kinds = {"sqlite": ""}
    if not options.skip_postgres:
        version = await postgres_version(options.postgres)
        if version is not None:
            machine["postgresql"] = version
            kinds["postgresql"] = options.postgres
    records = make_records(0 if options.skip_writer else options.records)
    runs: dict[str, dict[str, list[dict[str, Any]]]] = {
        kind: {path: [] for path in PATHS} for kind in kinds
    }
    for round_number in range(1, 0 if options.skip_writer else options.rounds + 1):
        for kind, base in kinds.items():  # interleaved: each round measures every cell once
            for path in PATHS:
                result = await run_once(kind, base, path, records, options)
                runs[kind][path].append(result)
                print(
                    f"round {round_number}: {kind:<10} {path:<15}"
                    f" {result['records_per_s']:>8,} records/s",
                    flush=True,
                )
    gateway: dict[str, Any] | None = None
    if not options.skip_gateway:
        with sigterm_as_interrupt():
            gateway = run_gateway_bench(options, kinds.get("postgresql"))
    backends: dict[str, Any] = {}
    for kind, by_path in runs.items() if not options.skip_writer else ():
        summary: dict[str, Any] = {path: summarise(by_path[path]) for path in PATHS}
        summary["goal_records_per_s"] = GOALS[kind]
        summary["goal_met"] = summary["writer_batched"]["records_per_s_median"] >= GOALS[kind]
        backends[kind] = summary
    machine["load_average_at_end"] = list(os.getloadavg())
    when, stamp = utc_timestamp()
    results = {
        "benchmark": "audit",
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
        "gateway": gateway,
    }
    if backends:
        print()
        print_table(backends)
    if gateway is not None:
        print()
        print_gateway_table(gateway)
    print(
        f"\nload average (1 min) at start / end: {machine['load_average_at_start'][0]:.2f}"
        f" / {machine['load_average_at_end'][0]:.2f} on {machine['nproc']} CPUs"
    )
    for written in write_results(options.results, "audit", stamp, results):
        print(f"written to {written}")
    return 0


if __name__ == "__main__":
    raise SystemExit(asyncio.run(main()))
