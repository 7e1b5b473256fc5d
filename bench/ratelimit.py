"""Rate limiting: cost per check, gateway throughput with limits on and off, and accuracy.

Three parts, one run:

1. **Cost per check**, in process: Dijk's limiter (memory, and Redis through its one Lua
   round trip) beside the ``limits`` library (the peer: the same sliding-window counter on
   its own memory and Redis storages), sequential and with 64 checks in flight.
2. **Gateway throughput**: ``dijk serve`` forwarding ``GET /bench`` to a fixed-response
   nginx with no limit, with a per-IP limit in memory and in Redis (limits high enough that
   everything passes, so only the cost of checking shows), beside nginx without and with
   ``limit_req`` (the peer), driven by wrk in interleaved rounds.
3. **Accuracy**: configured limit vs requests admitted, with 1 and 3 ``dijk serve``
   instances on memory and on Redis, under wrk load on every instance at once. Admitted
   requests are counted by the gateways themselves (``dijk_requests_total`` of every
   status except 429), so requests cut off when wrk stops are not missed.

A private ``redis-server`` is started on a free loopback port (nothing is written to
disk). Prints tables and writes ``bench/results/ratelimit-<UTC stamp>.json`` and
``ratelimit-latest.json``.

    .venv/bin/python -m bench.ratelimit            # full run (about 4 minutes)
    .venv/bin/python -m bench.ratelimit --quick    # smoke run
"""

from __future__ import annotations

import argparse
import asyncio
import math
import re
import shutil
import sys
import tempfile
import textwrap
import time
import urllib.request
import uuid
from collections.abc import Awaitable, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a file: python bench/ratelimit.py
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
    loopback_url,
    machine_info,
    run_wrk,
    sigterm_as_interrupt,
    utc_timestamp,
    wait_until_serving,
    write_results,
)
from bench.proxy import BODY, HOST, PATH, _nginx_argv, _nginx_upstream_http

HIGH_LIMIT = 1_000_000_000  # throughput runs: a limit nothing reaches


# --- part 1: cost per check --------------------------------------------------------------


async def _time_checks(
    check: Callable[[int], Awaitable[object]], count: int, inflight: int
) -> float:
    """Microseconds per check: ``count`` checks, ``inflight`` at a time."""
    started = time.perf_counter()
    if inflight == 1:
        for index in range(count):
            await check(index)
    else:

        async def worker(offset: int) -> None:
            for index in range(offset, count, inflight):
                await check(index)

        await asyncio.gather(*(worker(offset) for offset in range(inflight)))
    return (time.perf_counter() - started) / count * 1e6


Check = Callable[[int], Awaitable[object]]


@dataclass
class Case:
    """One configuration measured in part 1: a check function and how many to time."""

    implementation: str
    backend: str
    algorithm: str
    keys: int
    in_flight: int
    count: int
    check: Check
    samples: list[float]


async def _cost_per_check(redis_url: str | None, quick: bool, rounds: int) -> list[dict[str, Any]]:
    """Every case once per round, rounds interleaved (order rotated), medians reported."""
    from dijk.ratelimit.algorithms import Algorithm
    from dijk.ratelimit.backend import Bucket, Limiter, MemoryLimiter, open_limiter

    memory_count = 10_000 if quick else 50_000
    redis_count = 1_000 if quick else 5_000
    prefix = f"bench:{uuid.uuid4().hex[:8]}:"
    cases: list[Case] = []

    def dijk_cases(backend: str, limiter: Limiter, count: int) -> None:
        for algorithm in (Algorithm.SLIDING_WINDOW, Algorithm.GCRA):
            window = 60_000.0 if algorithm is Algorithm.SLIDING_WINDOW else 60_000.0 / HIGH_LIMIT
            burst = HIGH_LIMIT if algorithm is Algorithm.GCRA else 0
            for keys in (1, 10_000):
                pool = [
                    Bucket(f"{prefix}{algorithm.name}:{n}", algorithm, HIGH_LIMIT, window, burst)
                    for n in range(keys)
                ]

                async def check(index: int, pool: list[Bucket] = pool) -> object:
                    return await limiter.hit([pool[index % len(pool)]])

                for inflight in (1, 64):
                    name = algorithm.name.lower()
                    cases.append(Case("dijk", backend, name, keys, inflight, count, check, []))

    memory = MemoryLimiter(f"memory://bench-{uuid.uuid4().hex}")
    dijk_cases("memory", memory, memory_count)
    redis: Limiter | None = None
    if redis_url is not None:
        redis = open_limiter(redis_url, 1.0)
        dijk_cases("redis", redis, redis_count)
    peer_note = _limits_cases(cases, redis_url, memory_count, redis_count)
    for number in range(rounds):
        shift = (number * len(cases)) // rounds
        for case in cases[shift:] + cases[:shift]:
            await _time_checks(case.check, max(100, case.count // 20), case.in_flight)
            case.samples.append(await _time_checks(case.check, case.count, case.in_flight))
        print(f"  cost per check: round {number + 1}/{rounds} done", flush=True)
    if redis is not None:
        await redis.close()
    rows = [_cost_row(case) for case in cases]
    if peer_note:
        rows.append({"implementation": "limits", "note": peer_note})
    return rows


def _limits_cases(
    cases: list[Case], redis_url: str | None, memory_count: int, redis_count: int
) -> str | None:
    """The ``limits`` library's async sliding-window counter, on its memory and Redis storages."""
    try:
        from limits import RateLimitItemPerMinute
        from limits.aio.storage import MemoryStorage, RedisStorage
        from limits.aio.strategies import SlidingWindowCounterRateLimiter
    except ImportError:
        return "limits is not installed: peer skipped"
    item = RateLimitItemPerMinute(HIGH_LIMIT)
    storages: list[tuple[str, Any, int]] = [("memory", MemoryStorage(), memory_count)]
    if redis_url is not None:
        storages.append(("redis", RedisStorage(redis_url, implementation="redispy"), redis_count))
    for backend, storage, count in storages:
        limiter = SlidingWindowCounterRateLimiter(storage)
        for keys in (1, 10_000):
            names = [f"bench-{uuid.uuid4().hex[:8]}-{n}" for n in range(keys)]

            async def check(index: int, names: list[str] = names, limiter: Any = limiter) -> object:
                return await limiter.hit(item, names[index % len(names)])

            for inflight in (1, 64):
                cases.append(
                    Case("limits", backend, "sliding_window", keys, inflight, count, check, [])
                )
    return None


def _cost_row(case: Case) -> dict[str, Any]:
    spread = Spread.of(case.samples)
    assert spread is not None
    return {
        "implementation": case.implementation,
        "backend": case.backend,
        "algorithm": case.algorithm,
        "keys": case.keys,
        "in_flight": case.in_flight,
        "checks_per_round": case.count,
        "us_per_check": round(spread.median, 2),
        "us_min_max": [round(spread.minimum, 2), round(spread.maximum, 2)],
        "checks_per_s": round(1e6 / spread.median),
    }


# --- processes ---------------------------------------------------------------------------


@dataclass
class Setup:
    temp: Path
    services: ServiceGroup
    upstream_port: int
    nginx: str
    pinning: Pinning


def _dijk_executable() -> str:
    executable = ROOT / ".venv" / "bin" / "dijk"
    found = str(executable) if executable.exists() else shutil.which("dijk")
    if found is None:
        raise SystemExit("dijk executable not found (pip install -e . first)")
    return found


def _start_dijk(
    setup: Setup,
    name: str,
    rule: dict[str, Any] | None,
    storage_url: str,
    prefix: str,
    pin: bool,
) -> tuple[Service, int, int]:
    port, admin = free_port(), free_port()
    rules = ""
    if rule is not None:
        fields = ", ".join(f"{key}: {value}" for key, value in rule.items())
        rules = f"    rate_limit: [{{{fields}}}]\n"
    directory = setup.temp / name
    directory.mkdir(parents=True, exist_ok=True)
    config = directory / "dijk.yaml"
    config.write_text(
        textwrap.dedent(
            f"""\
            version: 1
            listen: {{address: {HOST}, port: {port}}}
            admin: {{address: {HOST}, port: {admin}}}
            storage: {{url: "{storage_url}", timeout_s: 1.0}}
            ratelimit: {{key_prefix: "{prefix}"}}
            upstreams:
              fixed: {{url: "http://{HOST}:{setup.upstream_port}"}}
            routes:
              - name: all
                match: {{path_prefix: /}}
                upstream: fixed
            """
        )
        + rules
    )
    argv = [_dijk_executable(), "serve", "-c", str(config)]
    service = setup.services.start(
        Service(
            name,
            setup.pinning.target(argv) if pin else argv,
            setup.temp / f"{name}.log",
            cwd=directory,  # its own ./.dijk (audit log): instances never share one
        )
    )
    problem = wait_until_serving(service, HOST, port, PATH, BODY, timeout_s=60)
    if problem is not None:
        tail = " | ".join(service.log_tail(5))
        raise RuntimeError(f"{name} did not start: {problem}: {tail}")
    return service, port, admin


def _admitted(admin_port: int) -> int:
    """Requests the gateway let through (no denial reason), from its own metrics.

    Counted by the gateway, not by wrk: a request admitted just before wrk stops is
    answered to a closed connection (499) and must still count.
    """
    with urllib.request.urlopen(f"http://{HOST}:{admin_port}/metrics", timeout=5) as response:
        text = response.read().decode()
    total = 0
    for match in re.finditer(r"^dijk_requests_total\{([^}]*)\} ([0-9.e+]+)$", text, re.MULTILINE):
        labels, value = match.group(1), float(match.group(2))
        if 'route="all"' in labels and 'reason=""' in labels:
            total += int(value)
    return total


# --- part 2: throughput ------------------------------------------------------------------


def _nginx_limit_http(port: int, upstream_port: int, limited: bool) -> str:
    zone = "limit_req_zone $binary_remote_addr zone=perip:10m rate=1000000r/s;\n" if limited else ""
    rule = "limit_req zone=perip burst=1000000 nodelay;" if limited else ""
    return zone + textwrap.dedent(
        f"""\
        upstream fixed {{
            server {HOST}:{upstream_port};
            keepalive 64;
            keepalive_requests 1000000;
        }}
        server {{
            listen {HOST}:{port} backlog=4096;
            location / {{
                {rule}
                proxy_pass http://fixed;
                proxy_http_version 1.1;
                proxy_set_header Connection "";
            }}
        }}
        """
    )


def _throughput(
    setup: Setup, redis_url: str | None, wrk: str, settings: Settings
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    ip_rule = {"key": "ip", "limit": HIGH_LIMIT, "per_s": 60}
    targets: dict[str, tuple[str, Service, int]] = {}
    descriptions = {
        "nginx": "nginx proxy, no limit (peer)",
        "nginx_limit_req": "nginx proxy + limit_req per IP, in shared memory (peer)",
        "dijk_off": "dijk serve, no rate limit",
        "dijk_memory": "dijk serve, per-IP sliding window, memory://",
        "dijk_redis": "dijk serve, per-IP sliding window, redis:// (one Lua round trip)",
    }
    for name, limited in (("nginx", False), ("nginx_limit_req", True)):
        port = free_port()
        argv = _nginx_argv(
            setup.nginx, setup.temp, name, _nginx_limit_http(port, setup.upstream_port, limited)
        )
        service = setup.services.start(
            Service(name, setup.pinning.target(argv), setup.temp / f"{name}.log")
        )
        problem = wait_until_serving(service, HOST, port, PATH, BODY, timeout_s=60)
        if problem is not None:
            raise RuntimeError(f"{name} did not start: {problem}")
        targets[name] = (descriptions[name], service, port)
    prefix = f"tp{uuid.uuid4().hex[:8]}:"
    variants: list[tuple[str, dict[str, Any] | None, str]] = [
        ("dijk_off", None, "memory://"),
        ("dijk_memory", ip_rule, "memory://"),
    ]
    if redis_url is not None:
        variants.append(("dijk_redis", ip_rule, redis_url))
    for name, rule, url in variants:
        service, port, _ = _start_dijk(setup, name, rule, url, prefix, pin=True)
        targets[name] = (descriptions[name], service, port)
    rounds: list[dict[str, Any]] = []
    names = list(targets)
    for number in range(settings.repeat):
        shift = number % len(names)
        order = names[shift:] + names[:shift]
        results: dict[str, Any] = {}
        for name in order:
            url = loopback_url(HOST, targets[name][2], PATH)
            if settings.warmup_s:
                run_wrk(
                    wrk,
                    url,
                    duration_s=round(settings.warmup_s),
                    connections=64,
                    threads=1,
                    pinning=setup.pinning,
                )
            result = run_wrk(
                wrk,
                url,
                duration_s=round(settings.duration_s),
                connections=64,
                threads=1,
                pinning=setup.pinning,
            )
            results[name] = result.to_json()
            print(
                f"  round {number + 1}: {name:<16} {result.requests_per_s:>10,.0f} req/s",
                flush=True,
            )
        rounds.append({"round": number + 1, "order": order, **results})
    summary: dict[str, Any] = {}
    for name in names:
        measured = [r[name] for r in rounds]
        rps = Spread.of([m["requests_per_s"] for m in measured])
        assert rps is not None
        summary[name] = {
            "description": targets[name][0],
            "requests_per_s": vars(rps) | {"relative": rps.relative},
            "p99_ms": sorted(m["p99_ms"] or 0 for m in measured)[len(measured) // 2],
            "errors": sum(m["errors"] for m in measured),
        }
    for name, _service, _port in (
        (n, targets[n][1], targets[n][2]) for n in names if n.startswith("dijk")
    ):
        setup.services.stop(targets[name][1])
    return summary, rounds


# --- part 3: accuracy --------------------------------------------------------------------


@dataclass(frozen=True)
class Scenario:
    name: str
    rule: dict[str, Any]
    duration_s: float
    note: str

    def bound(self, elapsed_s: float) -> int:
        """The most a correct limiter may admit in ``elapsed_s`` (every request sent
        happened inside that wall-clock span): sliding window limit x (span/window + 1);
        gcra burst + rate x span."""
        limit, per_s = self.rule["limit"], self.rule["per_s"]
        if self.rule.get("algorithm") == "gcra":
            burst = self.rule.get("burst", limit)
            return math.floor(burst + limit / per_s * elapsed_s)
        return math.floor(limit * (elapsed_s / per_s + 1))


def _scenarios(quick: bool) -> list[Scenario]:
    run = 2.0 if quick else 3.0
    rolling = 3.0 if quick else 4.0
    return [
        Scenario(
            "one window, sliding_window",
            {"key": "route", "limit": 300, "per_s": 3600},
            run,
            "the window outlasts the run: exactly the limit",
        ),
        Scenario(
            "one window, gcra",
            {"key": "route", "limit": 300, "per_s": 3600, "algorithm": "gcra"},
            run,
            "burst = limit, refill 1 per 12 s",
        ),
        Scenario(
            "rolling 100/1 s, sliding_window",
            {"key": "route", "limit": 100, "per_s": 1},
            rolling,
            "bound: limit x (span/window + 1)",
        ),
        Scenario(
            "rolling 100/1 s, gcra burst 100",
            {"key": "route", "limit": 100, "per_s": 1, "algorithm": "gcra"},
            rolling,
            "bound: burst + rate x span",
        ),
    ]


def _drive(wrk: str, ports: list[int], duration_s: float) -> tuple[int, float]:
    """wrk on every instance at once; (requests sent, wall-clock span of the load)."""
    no_pin = Pinning(None, None, "accuracy runs are not pinned")

    def one(port: int) -> int:
        result = run_wrk(
            wrk,
            loopback_url(HOST, port, PATH),
            duration_s=round(duration_s),
            connections=16,
            threads=1,
            pinning=no_pin,
        )
        return result.requests

    started = time.monotonic()
    with ThreadPoolExecutor(max_workers=len(ports)) as pool:
        sent = sum(pool.map(one, ports))
    return sent, time.monotonic() - started


def _accuracy(setup: Setup, redis_url: str | None, wrk: str, quick: bool) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    backends: list[tuple[str, str]] = [("memory", "memory://")]
    if redis_url is not None:
        backends.append(("redis", redis_url))
    for scenario in _scenarios(quick):
        for backend, url in backends:
            for instances in (1, 3):
                prefix = f"acc{uuid.uuid4().hex[:8]}:"
                started = [
                    _start_dijk(setup, f"acc-{backend}-{n}", scenario.rule, url, prefix, pin=False)
                    for n in range(instances)
                ]
                sent, span = _drive(wrk, [port for _, port, _ in started], scenario.duration_s)
                time.sleep(0.3)  # let the last answers be counted
                admitted = sum(_admitted(admin) for _, _, admin in started)
                for service, _, _ in started:
                    setup.services.stop(service)
                bound = scenario.bound(span)
                shared = backend != "memory" or instances == 1
                rows.append(
                    {
                        "scenario": scenario.name,
                        "backend": backend,
                        "instances": instances,
                        "configured_limit": scenario.rule["limit"],
                        "per_s": scenario.rule["per_s"],
                        "load_span_s": round(span, 3),
                        "bound": bound,
                        "requests_sent": sent,
                        "admitted": admitted,
                        "within_bound": admitted <= bound,
                        "shared": shared,
                        "note": scenario.note
                        if shared
                        else "memory:// counts per instance: not shared, up to "
                        f"{bound * instances} in total",
                    }
                )
                print(
                    f"  accuracy: {scenario.name:<32} {backend:<6} x{instances}: "
                    f"{admitted} admitted of {sent} (bound {bound})",
                    flush=True,
                )
    return rows


# --- main ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Settings:
    duration_s: float
    warmup_s: float
    repeat: int
    quick: bool
    pin: bool
    results_dir: Path
    parts: frozenset[str] = frozenset({"cost", "throughput", "accuracy"})


def parse_arguments(argv: Sequence[str] | None) -> Settings:
    parser = argparse.ArgumentParser(
        prog="python -m bench.ratelimit",
        description="Rate limiting: cost per check, throughput on/off, accuracy; one run.",
    )
    parser.add_argument("--duration", type=int, default=5, help="seconds per wrk run")
    parser.add_argument("--warmup", type=int, default=1, help="wrk seconds before each run")
    parser.add_argument("--repeat", type=int, default=3, help="throughput rounds")
    parser.add_argument("--quick", action="store_true", help="smoke run: 1 round of 2 s")
    parser.add_argument("--no-pin", action="store_true", help="do not use taskset")
    parser.add_argument("--results-dir", type=Path, default=RESULTS_DIR)
    parser.add_argument(
        "--parts",
        default="cost,throughput,accuracy",
        help="comma-separated subset of: cost, throughput, accuracy (default: all)",
    )
    arguments = parser.parse_args(argv)
    parts = frozenset(part.strip() for part in arguments.parts.split(",") if part.strip())
    if not parts or parts - {"cost", "throughput", "accuracy"}:
        parser.error("--parts takes cost, throughput and/or accuracy")
    if arguments.quick:
        arguments.repeat, arguments.duration = 1, 2
    return Settings(
        arguments.duration,
        arguments.warmup,
        arguments.repeat,
        arguments.quick,
        not arguments.no_pin,
        arguments.results_dir,
        parts,
    )


def _start_redis(setup: Setup) -> str | None:
    server = shutil.which("redis-server")
    if server is None:
        try:
            server = ensure_tool("redis-server", "redis-server")
        except (SystemExit, OSError) as error:
            print(f"  redis-server unavailable ({error}): Redis rows skipped", flush=True)
            return None
    port = free_port()
    argv = [
        server,
        "--bind",
        HOST,
        "--port",
        str(port),
        "--save",
        "",
        "--appendonly",
        "no",
        "--protected-mode",
        "yes",
    ]
    service = setup.services.start(Service("redis", argv, setup.temp / "redis.log"))
    deadline = time.monotonic() + 10
    import socket

    while time.monotonic() < deadline:
        if service.exit_code is not None:
            print(f"  redis-server exited: {service.log_tail(3)}", flush=True)
            return None
        try:
            with socket.create_connection((HOST, port), timeout=0.5) as sock:
                sock.sendall(b"PING\r\n")
                if sock.recv(64).startswith(b"+PONG"):
                    return f"redis://{HOST}:{port}/0"
        except OSError:
            time.sleep(0.1)
    return None


def _render(
    cost: list[dict[str, Any]], throughput: dict[str, Any], accuracy: list[dict[str, Any]]
) -> str:
    parts = []
    rows = [
        [
            r["implementation"],
            r["backend"],
            r["algorithm"],
            str(r["keys"]),
            str(r["in_flight"]),
            f"{r['us_per_check']:.1f}",
            f"{r['us_min_max'][0]:.1f}-{r['us_min_max'][1]:.1f}",
            f"{r['checks_per_s']:,}",
        ]
        for r in cost
        if "us_per_check" in r
    ]
    parts.append(
        "cost per check (in process, uvloop; median of interleaved rounds)\n"
        + format_table(
            [
                "impl",
                "backend",
                "algorithm",
                "keys",
                "in flight",
                "us/check",
                "min-max",
                "checks/s",
            ],
            rows,
            right={3, 4, 5, 6, 7},
        )
    )
    off = throughput.get("dijk_off", {}).get("requests_per_s", {}).get("median")
    nginx = throughput.get("nginx", {}).get("requests_per_s", {}).get("median")
    rows = []
    for name, summary in throughput.items():
        rps = summary["requests_per_s"]
        base = off if name.startswith("dijk") else nginx
        rows.append(
            [
                name,
                f"{rps['median']:,.0f}",
                f"{rps['minimum']:,.0f}-{rps['maximum']:,.0f}",
                f"{summary['p99_ms']:.2f}",
                "-" if not base else f"{rps['median'] / base:.2f}",
                str(summary["errors"]),
            ]
        )
    parts.append(
        "gateway throughput, wrk -c64, limit never reached (vs own no-limit baseline)\n"
        + format_table(
            ["target", "req/s", "min-max", "p99 ms", "vs off", "errors"],
            rows,
            right={1, 2, 3, 4, 5},
        )
    )
    rows = [
        [
            r["scenario"],
            r["backend"],
            str(r["instances"]),
            str(r["configured_limit"]),
            str(r["bound"]),
            str(r["requests_sent"]),
            str(r["admitted"]),
            ("yes" if r["within_bound"] else "NO") if r["shared"] else "n/a: per instance",
        ]
        for r in accuracy
    ]
    parts.append(
        "accuracy: admitted vs configured (wrk on every instance at once)\n"
        + format_table(
            ["scenario", "backend", "inst", "limit", "bound", "sent", "admitted", "ok"],
            rows,
            right={2, 3, 4, 5, 6},
        )
    )
    shown = [bool(cost), bool(throughput), bool(accuracy)]
    return "\n\n".join(part for part, show in zip(parts, shown, strict=True) if show)


def main(argv: Sequence[str] | None = None) -> int:
    settings = parse_arguments(argv)
    nginx = ensure_tool("nginx", "nginx")
    wrk = ensure_tool("wrk", "wrk")
    pinning = Pinning.choose(settings.pin)
    started_at, stamp = utc_timestamp()
    machine = machine_info(
        {"nginx": [nginx, "-v"], "wrk": [wrk, "--version"], "redis": ["redis-server", "--version"]},
        ["dijk", "limits", "redis", "uvloop", "httptools"],
    )
    temp = Path(tempfile.mkdtemp(prefix="dijk-bench-ratelimit-"))
    print(f"rate-limit benchmark\n  pinning: {pinning.reason}\n  temp: {temp}", flush=True)
    try:
        with sigterm_as_interrupt(), ServiceGroup() as services:
            upstream_port = free_port()
            upstream = services.start(
                Service(
                    "upstream",
                    pinning.load(
                        _nginx_argv(nginx, temp, "upstream", _nginx_upstream_http(upstream_port))
                    ),
                    temp / "upstream.log",
                )
            )
            problem = wait_until_serving(upstream, HOST, upstream_port, PATH, BODY)
            if problem is not None:
                raise SystemExit(f"upstream nginx did not start: {problem}")
            setup = Setup(temp, services, upstream_port, nginx, pinning)
            redis_url = _start_redis(setup)
            import uvloop

            cost: list[dict[str, Any]] = []
            throughput: dict[str, Any] = {}
            rounds: list[dict[str, Any]] = []
            accuracy: list[dict[str, Any]] = []
            if "cost" in settings.parts:
                print("part 1: cost per check", flush=True)
                cost = uvloop.run(_cost_per_check(redis_url, settings.quick, settings.repeat))
            if "throughput" in settings.parts:
                print("part 2: gateway throughput", flush=True)
                throughput, rounds = _throughput(setup, redis_url, wrk, settings)
            if "accuracy" in settings.parts:
                print("part 3: accuracy", flush=True)
                accuracy = _accuracy(setup, redis_url, wrk, settings.quick)
    except KeyboardInterrupt:
        print("\ninterrupted: every started process was stopped", file=sys.stderr)
        return 130
    finally:
        shutil.rmtree(temp, ignore_errors=True)
    print()
    print(_render(cost, throughput, accuracy))
    print(f"\npinning: {pinning.reason}; redis-server is not pinned and shares the machine.")
    written = write_results(
        settings.results_dir,
        "ratelimit",
        stamp,
        {
            "benchmark": "ratelimit",
            "started_at": started_at,
            "machine": machine,
            "parameters": {
                "duration_s": settings.duration_s,
                "warmup_s": settings.warmup_s,
                "repeat": settings.repeat,
                "quick": settings.quick,
                "redis": redis_url is not None,
            },
            "cost_per_check": cost,
            "throughput": throughput,
            "throughput_rounds": rounds,
            "accuracy": accuracy,
        },
    )
    print("wrote " + ", ".join(str(path) for path in written))
    exact = all(row["within_bound"] for row in accuracy if row["shared"])
    return 0 if exact else 1


if __name__ == "__main__":
    sys.exit(main())
