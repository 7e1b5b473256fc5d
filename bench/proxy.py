"""Proxy throughput: Dijk with an empty pipeline beside nginx and bare Python proxies.

Every target forwards ``GET /bench`` to the same fixed-response nginx upstream; wrk drives
each in turn (round-robin, order rotated every round) so that the machine's noise hits all
of them. Prints a plain table and writes ``bench/results/proxy-<UTC stamp>.json`` and
``proxy-latest.json``. See bench/README.md for how to read the numbers.

    .venv/bin/python -m bench.proxy                      # all targets, 3 rounds of 5 s
    .venv/bin/python -m bench.proxy --quick              # smoke run: 1 round of 2 s
    .venv/bin/python -m bench.proxy --targets nginx,native_pool --repeat 5
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import textwrap
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a file: python bench/proxy.py
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
    median_or_none,
    run_wrk,
    sigterm_as_interrupt,
    utc_timestamp,
    wait_until_serving,
    write_results,
)
from bench.variants import UPSTREAM_ENV

HOST = "127.0.0.1"
PATH = "/bench"
BODY = b'{"status":"ok"}'
PEER = "nginx"
DIRECT = "direct"
LOAD_BOUND = 0.9  # a target this close to DIRECT is limited by the load side, not itself
STARVED = 0.8  # a target using less of its CPU than this was not CPU-bound on its own
READY_TIMEOUT_S = 20.0


@dataclass(frozen=True)
class Launch:
    """What a target's command needs: its ports, the upstream's, a temp dir, nginx's path."""

    upstream_port: int
    port: int
    admin_port: int
    temp: Path
    nginx: str


@dataclass(frozen=True)
class TargetKind:
    """How to start one target; ``command`` returns argv or a reason it cannot run here.

    A target without a command has no process of its own: wrk drives the upstream directly.
    """

    name: str
    description: str
    command: Callable[[Launch], list[str] | str] | None
    cwd_is_repo: bool = False  # Python variants import ``bench.variants`` from the repo
    # Several worker processes: not pinned to the target CPU (they use every CPU, which on
    # a 2-CPU machine includes the one wrk and the upstream run on), and measured only once
    # this line is in the target's log (the first worker serves before the others listen).
    all_cpus: bool = False
    ready_line: str | None = None


def _nginx_command(workers: int) -> Callable[[Launch], list[str]]:
    def command(launch: Launch) -> list[str]:
        http = _nginx_proxy_http(launch.port, launch.upstream_port)
        return _nginx_argv(launch.nginx, launch.temp, f"proxy-{workers}", http, workers)

    return command


def _granian_command(interface: str, module: str) -> Callable[[Launch], list[str]]:
    def command(launch: Launch) -> list[str]:
        return [
            sys.executable,
            "-m",
            "granian",
            "--interface",
            interface,
            "--loop",
            "uvloop",
            "--workers",
            "1",
            "--host",
            HOST,
            "--port",
            str(launch.port),
            "--log-level",
            "warning",
            f"bench.variants.{module}:app",
        ]

    return command


def _native_command(launch: Launch) -> list[str]:
    return [sys.executable, "-m", "bench.variants.native_pool", "--port", str(launch.port)]


def _dijk_command(audit: bool, workers: int = 1) -> Callable[[Launch], list[str] | str]:
    """``dijk serve`` with one route and no stage of its own; ``audit`` keeps the audit log
    on (its default: batched, SQLite in the target's temp dir), otherwise it is off;
    ``workers`` processes."""

    def command(launch: Launch) -> list[str] | str:
        executable = ROOT / ".venv" / "bin" / "dijk"
        found = str(executable) if executable.exists() else shutil.which("dijk")
        if found is None:
            return "dijk executable not found (pip install -e . first)"
        name = ("dijk-audit" if audit else "dijk") + (f"-{workers}w" if workers > 1 else "")
        directory = launch.temp / name
        directory.mkdir(exist_ok=True)
        log = f'{{url: "sqlite:///{directory}/audit.db"}}' if audit else "{enabled: false}"
        config = launch.temp / f"{name}.yaml"
        config.write_text(
            textwrap.dedent(
                f"""\
                version: 1
                workers: {workers}
                listen: {{address: {HOST}, port: {launch.port}}}
                admin: {{address: {HOST}, port: {launch.admin_port}}}
                audit: {log}
                upstreams:
                  fixed: {{url: "http://{HOST}:{launch.upstream_port}"}}
                routes:
                  - name: all
                    match: {{path_prefix: /}}
                    upstream: fixed
                """
            )
        )
        return [found, "serve", "-c", str(config)]

    return command


TARGETS = {
    kind.name: kind
    for kind in (
        TargetKind(DIRECT, "no proxy: wrk straight to the upstream (load-side ceiling)", None),
        TargetKind(
            PEER,
            "nginx reverse proxy, 1 worker, upstream keepalive 64 (the peer)",
            _nginx_command(1),
        ),
        TargetKind(
            "nginx_2w",
            "nginx reverse proxy, worker_processes 2 (not pinned: both CPUs)",
            _nginx_command(2),
            all_cpus=True,
        ),
        TargetKind(
            "asgi_aiohttp",
            "granian ASGI + aiohttp ClientSession",
            _granian_command("asgi", "asgi_aiohttp"),
            cwd_is_repo=True,
        ),
        TargetKind(
            "rsgi_aiohttp",
            "granian RSGI + aiohttp ClientSession",
            _granian_command("rsgi", "rsgi_aiohttp"),
            cwd_is_repo=True,
        ),
        TargetKind(
            "rsgi_pool",
            "granian RSGI + lean httptools pool",
            _granian_command("rsgi", "rsgi_pool"),
            cwd_is_repo=True,
        ),
        TargetKind(
            "native_pool",
            "uvloop Protocol server + lean httptools pool",
            _native_command,
            cwd_is_repo=True,
        ),
        TargetKind("dijk", "dijk serve, empty pipeline (audit log off)", _dijk_command(False)),
        TargetKind(
            "dijk_audit",
            "dijk serve, empty pipeline + audit log (default, batched SQLite)",
            _dijk_command(True),
        ),
        TargetKind(
            "dijk_2w",
            "dijk serve, workers: 2, empty pipeline (not pinned: both CPUs)",
            _dijk_command(False, workers=2),
            all_cpus=True,
            ready_line='"workers_started"',
        ),
    )
}


# --- nginx configuration -----------------------------------------------------------------


def _nginx_conf(temp: Path, name: str, http_body: str, workers: int = 1) -> str:
    """A self-contained nginx.conf: every path under ``temp``, nothing from /etc/nginx."""
    state = temp / f"nginx-{name}"
    head = textwrap.dedent(
        f"""\
        daemon off;
        master_process on;
        worker_processes {workers};
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
            # The default (1000 requests) would make wrk and the proxies reconnect every
            # few milliseconds; the benchmark measures forwarding, not connection setup.
            keepalive_requests 1000000;
            keepalive_timeout 75s;
        """
    )
    return head + textwrap.indent(http_body, "    ") + "}\n"


def _nginx_upstream_http(port: int) -> str:
    return textwrap.dedent(
        f"""\
        server {{
            listen {HOST}:{port} backlog=4096;
            location / {{
                default_type application/json;
                return 200 '{BODY.decode()}';
            }}
        }}
        """
    )


def _nginx_proxy_http(port: int, upstream_port: int) -> str:
    return textwrap.dedent(
        f"""\
        upstream fixed {{
            server {HOST}:{upstream_port};
            keepalive 64;
            keepalive_requests 1000000;
        }}
        server {{
            listen {HOST}:{port} backlog=4096;
            location / {{
                proxy_pass http://fixed;
                proxy_http_version 1.1;
                proxy_set_header Connection "";
            }}
        }}
        """
    )


def _nginx_argv(nginx: str, temp: Path, name: str, http_body: str, workers: int = 1) -> list[str]:
    state = temp / f"nginx-{name}"
    state.mkdir(parents=True, exist_ok=True)
    conf = state / "nginx.conf"
    conf.write_text(_nginx_conf(temp, name, http_body, workers))
    # -e: nginx opens its error log before it reads the configuration; keep it in temp too.
    return [nginx, "-p", str(state), "-e", str(state / "error.log"), "-c", str(conf)]


# --- running -----------------------------------------------------------------------------


@dataclass
class Target:
    kind: TargetKind
    launch: Launch
    argv: list[str] | None = None
    service: Service | None = None
    skipped: str | None = None  # why it was not (or no longer) measured
    died: bool = False  # its process exited during the run: a crash, flagged like errors

    @property
    def ready(self) -> bool:
        return self.skipped is None and (self.service is not None or self.kind.command is None)

    @property
    def url(self) -> str:
        port = self.launch.port if self.kind.command else self.launch.upstream_port
        return loopback_url(HOST, port, PATH)


@dataclass(frozen=True)
class Settings:
    targets: list[str]
    duration_s: int
    warmup_s: int
    repeat: int
    connections: int
    threads: int
    pin: bool
    results_dir: Path
    keep_temp: bool


def parse_arguments(argv: Sequence[str] | None) -> Settings:
    parser = argparse.ArgumentParser(
        prog="python -m bench.proxy",
        description="Proxy throughput: Dijk beside nginx and bare Python proxies, one run.",
    )
    parser.add_argument(
        "--targets",
        default=",".join(TARGETS),
        help=f"comma-separated subset of: {', '.join(TARGETS)} (default: all)",
    )
    # wrk only takes whole seconds.
    parser.add_argument("--duration", type=int, default=5, help="seconds per wrk run")
    parser.add_argument("--warmup", type=int, default=1, help="wrk seconds before each run")
    parser.add_argument("--repeat", type=int, default=3, help="rounds over all targets")
    parser.add_argument("--connections", type=int, default=64, help="wrk -c")
    parser.add_argument("--threads", type=int, default=1, help="wrk -t")
    parser.add_argument("--no-pin", action="store_true", help="do not use taskset")
    parser.add_argument("--quick", action="store_true", help="smoke run: 1 round of 2 s")
    parser.add_argument("--results-dir", type=Path, default=RESULTS_DIR)
    parser.add_argument("--keep-temp", action="store_true", help="keep configs and logs")
    arguments = parser.parse_args(argv)
    names = [name.strip() for name in arguments.targets.split(",") if name.strip()]
    unknown = [name for name in names if name not in TARGETS]
    if unknown or not names:
        parser.error(f"unknown target(s) {', '.join(unknown)}; choose from {', '.join(TARGETS)}")
    if arguments.quick:
        arguments.repeat, arguments.duration = 1, 2
    if arguments.repeat < 1 or arguments.duration <= 0 or arguments.warmup < 0:
        parser.error("--repeat must be >= 1, --duration > 0 and --warmup >= 0")
    return Settings(
        targets=list(dict.fromkeys(names)),
        duration_s=arguments.duration,
        warmup_s=arguments.warmup,
        repeat=arguments.repeat,
        connections=arguments.connections,
        threads=arguments.threads,
        pin=not arguments.no_pin,
        results_dir=arguments.results_dir,
        keep_temp=arguments.keep_temp,
    )


def start_target(target: Target, services: ServiceGroup, pinning: Pinning) -> None:
    """Start one target and wait until it forwards; on failure mark it skipped, with why."""
    launch = target.launch
    if target.kind.command is None:
        return
    command = target.kind.command(launch)
    if isinstance(command, str):
        target.skipped = command
        return
    target.argv = list(command) if target.kind.all_cpus else pinning.target(command)
    env = dict(os.environ)
    env[UPSTREAM_ENV] = f"http://{HOST}:{launch.upstream_port}"
    env["PYTHONFAULTHANDLER"] = "1"  # a crash in uvloop/httptools leaves a traceback in the log
    env["PYTHONPATH"] = str(ROOT) + (":" + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    service = Service(
        target.kind.name,
        target.argv,
        launch.temp / f"{target.kind.name}.log",
        cwd=ROOT if target.kind.cwd_is_repo else launch.temp,
        env=env,
    )
    try:
        services.start(service)
    except OSError as error:
        target.skipped = f"could not start: {error}"
        return
    problem = wait_until_serving(service, HOST, launch.port, PATH, BODY, READY_TIMEOUT_S)
    if problem is None and target.kind.ready_line is not None:
        problem = _wait_for_log_line(service, target.kind.ready_line)
    if problem is not None:
        target.skipped = problem
        services.stop(service)
        return
    target.service = service


def _wait_for_log_line(service: Service, text: str) -> str | None:
    deadline = time.monotonic() + READY_TIMEOUT_S * 3  # every worker imports and compiles
    while time.monotonic() < deadline:
        try:
            if text in service.log_path.read_text(errors="replace"):
                return None
        except OSError:
            pass
        time.sleep(0.1)
    return f"{text} not logged within {READY_TIMEOUT_S * 3:.0f} s"


def measure(target: Target, wrk: str, settings: Settings, pinning: Pinning) -> dict[str, Any]:
    """Warm up, then one measured wrk run; adds the target's own CPU use during it.

    CPU per request is the cost that survives a noisy machine best: when another process
    takes CPU time from the target, its req/s drops but its CPU per request barely moves.
    """
    if settings.warmup_s > 0:
        run_wrk(
            wrk,
            target.url,
            duration_s=settings.warmup_s,
            connections=settings.connections,
            threads=settings.threads,
            pinning=pinning,
        )
    service = target.service
    cpu_before = service.cpu_seconds() if service is not None else None
    load_average = os.getloadavg()[0]
    result = run_wrk(
        wrk,
        target.url,
        duration_s=settings.duration_s,
        connections=settings.connections,
        threads=settings.threads,
        pinning=pinning,
    )
    cpu_after = service.cpu_seconds() if service is not None else None
    record = result.to_json() | {"load_average_1m_before": load_average}
    if cpu_before is not None and cpu_after is not None:
        cpu = cpu_after - cpu_before
        record["target_cpu_s"] = cpu
        record["target_cpu_share"] = cpu / settings.duration_s
        record["cpu_us_per_request"] = cpu / result.requests * 1e6 if result.requests else None
    return record


def run_rounds(
    targets: list[Target], wrk: str, settings: Settings, pinning: Pinning
) -> list[dict[str, Any]]:
    """Round-robin over the live targets; round r starts r places further along."""
    rounds: list[dict[str, Any]] = []
    for number in range(settings.repeat):
        live = [target for target in targets if target.ready]
        if not live:
            break
        shift = number % len(live)
        order = live[shift:] + live[:shift]
        results: dict[str, Any] = {}
        for target in order:
            print(
                f"  round {number + 1}/{settings.repeat}: {target.kind.name:<13}",
                end="",
                flush=True,
            )
            service = target.service
            if service is not None and service.exit_code is not None:
                last_line = " ".join(service.log_tail(1))[:200]
                target.skipped = (
                    f"died before round {number + 1} (exit code {service.exit_code}): {last_line}"
                )
                target.died = True
                print(" died", flush=True)
                continue
            try:
                result = measure(target, wrk, settings, pinning)
            except (RuntimeError, ValueError) as error:
                results[target.kind.name] = {"failed": str(error)}
                print(f" failed: {error}", flush=True)
                continue
            results[target.kind.name] = result
            flag = f"  ({result['errors']} errors)" if result["errors"] else ""
            print(f" {result['requests_per_s']:>10,.0f} req/s{flag}", flush=True)
        peer = results.get(PEER, {})
        direct = results.get(DIRECT, {})
        for result in results.values():
            result["ratio_to_nginx"] = _ratio(result, peer, "requests_per_s")
            result["ratio_to_direct"] = _ratio(result, direct, "requests_per_s")
            result["cpu_ratio_to_nginx"] = _ratio(result, peer, "cpu_us_per_request")
        rounds.append({"round": number + 1, "order": [t.kind.name for t in order], **results})
    return rounds


def _ratio(result: dict[str, Any], reference: dict[str, Any], key: str) -> float | None:
    value, base = result.get(key), reference.get(key)
    return value / base if value is not None and base else None


def summarise(target: Target, rounds: list[dict[str, Any]]) -> dict[str, Any]:
    """Medians over the rounds a target was measured in, with the spread of req/s and ratios."""
    name = target.kind.name
    measured = [r[name] for r in rounds if "requests_per_s" in r.get(name, {})]
    failed = [r[name]["failed"] for r in rounds if "failed" in r.get(name, {})]

    def spread(key: str) -> dict[str, float] | None:
        found = Spread.of([m[key] for m in measured if m.get(key) is not None])
        return None if found is None else vars(found) | {"relative": found.relative}

    def median(key: str) -> float | None:
        return median_or_none([m.get(key) for m in measured])

    return {
        "description": target.kind.description,
        "command": target.argv,
        "status": "measured" if measured else "skipped",
        "note": target.skipped or (failed[0] if failed else None),
        "rounds_measured": len(measured),
        "requests_per_s": spread("requests_per_s"),
        "p50_ms": median("p50_ms"),
        "p99_ms": median("p99_ms"),
        "ratio_to_nginx": spread("ratio_to_nginx"),
        "ratio_to_direct": spread("ratio_to_direct"),
        "cpu_us_per_request": median("cpu_us_per_request"),
        "cpu_ratio_to_nginx": spread("cpu_ratio_to_nginx"),
        "target_cpu_share": median("target_cpu_share"),
        "errors": sum(m["errors"] for m in measured),
        "failed_rounds": len(failed),
        "died": target.died,
    }


TABLE_HEADERS = [
    "target",
    "req/s",
    "min-max",
    "spread",
    "p50 ms",
    "p99 ms",
    "vs nginx (min-max)",
    "CPU us/req",
    "CPU x nginx",
    "core %",
    "errors",
]


def render(summaries: dict[str, dict[str, Any]]) -> tuple[str, list[str]]:
    """The plain table and the notes under it (skips, flagged errors, load-bound peers)."""
    rows: list[list[str]] = []
    notes: list[str] = []
    for name, summary in summaries.items():
        rps = summary["requests_per_s"]
        if rps is None:
            rows.append([name] + ["-"] * (len(TABLE_HEADERS) - 1))
            state = "FAILED" if summary["failed_rounds"] or summary["died"] else "skipped"
            notes.append(f"{name}: {state}: {summary['note']}")
            continue
        flagged = summary["errors"] > 0 or summary["failed_rounds"] > 0 or summary["died"]
        if summary["died"]:
            notes.append(f"{name}: FLAGGED: {summary['note']}")
        elif flagged:
            notes.append(
                f"{name}: FLAGGED: {summary['errors']} failed or non-2xx/3xx responses, "
                f"{summary['failed_rounds']} failed round(s); its numbers are not comparable"
            )
        elif summary["note"]:
            notes.append(f"{name}: {summary['note']}")
        to_direct = summary["ratio_to_direct"]
        if name != DIRECT and to_direct is not None and to_direct["median"] >= LOAD_BOUND:
            notes.append(
                f"{name}: reached {to_direct['median']:.0%} of direct, so the load side (wrk +"
                " upstream) limits it: its req/s is a lower bound, ratios to it flatter others"
            )
        ratio, cpu_ratio = summary["ratio_to_nginx"], summary["cpu_ratio_to_nginx"]
        share = summary["target_cpu_share"]
        rows.append(
            [
                name + (" !" if flagged else ""),
                f"{rps['median']:,.0f}",
                f"{rps['minimum']:,.0f}-{rps['maximum']:,.0f}",
                f"{rps['relative']:.0%}",
                _number(summary["p50_ms"]),
                _number(summary["p99_ms"]),
                "-"
                if ratio is None
                else f"{ratio['median']:.2f} ({ratio['minimum']:.2f}-{ratio['maximum']:.2f})",
                _number(summary["cpu_us_per_request"], 1),
                "-" if cpu_ratio is None else f"{cpu_ratio['median']:.1f}",
                "-" if share is None else f"{share:.0%}",
                str(summary["errors"]),
            ]
        )
    starved = [
        name
        for name, summary in summaries.items()
        if summary["target_cpu_share"] is not None and summary["target_cpu_share"] < STARVED
    ]
    if starved:
        notes.append(
            f"{', '.join(starved)}: used under {STARVED:.0%} of their CPU: other processes took"
            " it, or they waited on the load side; req/s understates them, CPU us/req holds"
        )
    right = set(range(1, len(TABLE_HEADERS)))
    return format_table(TABLE_HEADERS, rows, right=right), notes


def _number(value: float | None, decimals: int = 2) -> str:
    return "-" if value is None else f"{value:,.{decimals}f}"


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark; 0 if every started target was measured without errors."""
    settings = parse_arguments(argv)
    nginx = ensure_tool("nginx", "nginx")
    wrk = ensure_tool("wrk", "wrk")
    pinning = Pinning.choose(settings.pin)
    started_at, stamp = utc_timestamp()
    machine = machine_info(
        {"nginx": [nginx, "-v"], "wrk": [wrk, "--version"]},
        ["granian", "aiohttp", "uvloop", "httptools", "dijk"],
    )
    temp = Path(tempfile.mkdtemp(prefix="dijk-bench-proxy-"))
    print(
        f"proxy benchmark: {', '.join(settings.targets)}\n"
        f"  wrk -t{settings.threads} -c{settings.connections} -d{settings.duration_s}s "
        f"--latency, {settings.warmup_s} s warm-up each, {settings.repeat} round(s)\n"
        f"  pinning: {pinning.reason}\n  temp: {temp}",
        flush=True,
    )
    try:
        targets, rounds, configs = run(settings, pinning, temp, nginx, wrk)
    except KeyboardInterrupt:
        print("\ninterrupted: every started process was stopped", file=sys.stderr)
        return 130
    finally:
        if settings.keep_temp:
            print(f"kept {temp}")
        else:
            shutil.rmtree(temp, ignore_errors=True)
    machine["load_average_at_end"] = list(os.getloadavg())
    summaries = {target.kind.name: summarise(target, rounds) for target in targets}
    print_report(summaries, len(rounds), settings, pinning)
    written = write_results(
        settings.results_dir,
        "proxy",
        stamp,
        {
            "benchmark": "proxy",
            "started_at": started_at,
            "machine": machine,
            "parameters": _parameters(settings, pinning),
            "summary": summaries,
            "rounds": rounds,
            "configs": configs,
        },
    )
    print("wrote " + ", ".join(str(path) for path in written))
    peer_ok = summaries.get(PEER, {"status": "measured"})["status"] == "measured"
    clean = all(
        summary["errors"] == 0 and summary["failed_rounds"] == 0 and not summary["died"]
        for summary in summaries.values()
    )
    return 0 if peer_ok and clean else 1


def run(
    settings: Settings, pinning: Pinning, temp: Path, nginx: str, wrk: str
) -> tuple[list[Target], list[dict[str, Any]], dict[str, str]]:
    """Start the upstream and every target, run the rounds; everything stops on the way out.

    Returns the targets, the raw rounds and the generated configuration files' text.
    """
    with sigterm_as_interrupt(), ServiceGroup() as services:
        upstream_port = free_port()
        upstream_argv = _nginx_argv(nginx, temp, "upstream", _nginx_upstream_http(upstream_port))
        upstream = services.start(
            Service("upstream", pinning.load(upstream_argv), temp / "upstream.log")
        )
        problem = wait_until_serving(upstream, HOST, upstream_port, PATH, BODY)
        if problem is not None:
            raise SystemExit(f"upstream nginx did not start: {problem}")
        targets = []
        for name in settings.targets:
            target = Target(
                TARGETS[name], Launch(upstream_port, free_port(), free_port(), temp, nginx)
            )
            start_target(target, services, pinning)
            state = "ready" if target.ready else f"skipped: {target.skipped}"
            print(f"  {name}: {state}", flush=True)
            targets.append(target)
        configs = {
            str(path.relative_to(temp)): path.read_text()
            for path in sorted(temp.rglob("*"))
            if path.suffix in {".conf", ".yaml"}
        }
        return targets, run_rounds(targets, wrk, settings, pinning), configs


def print_report(
    summaries: dict[str, dict[str, Any]], rounds: int, settings: Settings, pinning: Pinning
) -> None:
    table, notes = render(summaries)
    print()
    print(table)
    print(
        f"\nmedians of {rounds} round(s) of {settings.duration_s} s; spread = "
        "(max-min)/median of req/s; vs nginx = median (min-max) of per-round req/s ratios;\n"
        "CPU us/req = the target's own CPU time per request; CPU x nginx = that, over nginx's;\n"
        "core % = share of its one CPU the target used (below ~95%: starved or waiting).\n"
        f"pinning: {pinning.reason}"
    )
    for note in notes:
        print(f"note: {note}")


def _parameters(settings: Settings, pinning: Pinning) -> dict[str, Any]:
    return {
        "targets": settings.targets,
        "path": PATH,
        "upstream_body": BODY.decode(),
        "duration_s": settings.duration_s,
        "warmup_s": settings.warmup_s,
        "repeat": settings.repeat,
        "connections": settings.connections,
        "threads": settings.threads,
        "pinning": {
            "target_cpus": pinning.target_cpus,
            "load_cpus": pinning.load_cpus,
            "description": pinning.reason,
        },
    }


if __name__ == "__main__":
    sys.exit(main())
