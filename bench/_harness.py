"""Shared machinery for load benchmarks: processes, readiness, wrk, statistics, tables, JSON.

Rules this module enforces so that every benchmark under ``bench/`` keeps them:

- load only ever goes to loopback addresses (:func:`loopback_url` refuses anything else);
- every process a benchmark starts is a :class:`Service` registered with a
  :class:`ServiceGroup`, which stops them all (process group, SIGTERM then SIGKILL) on
  normal exit, on an exception, on Ctrl-C and on SIGTERM;
- results are medians over interleaved rounds with their min-max spread, never one run.
"""

from __future__ import annotations

import contextlib
import ctypes
import http.client
import ipaddress
import json
import os
import platform
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from types import FrameType
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
RESULTS_DIR = ROOT / "bench" / "results"


# --- tools -------------------------------------------------------------------------------


def ensure_tool(command: str, apt_package: str) -> str:
    """Path of ``command``; installs ``apt_package`` with apt-get first if it is missing.

    ``RUNLEVEL=1`` keeps Debian's maintainer scripts from starting the package's system
    service (the benchmark never wants the system nginx running).
    """
    found = shutil.which(command) or _in_sbin(command)
    if found:
        return found
    if shutil.which("apt-get") is None:
        raise SystemExit(f"{command} is missing and apt-get is not available to install it")
    print(f"{command} not found: installing the Debian package {apt_package}", flush=True)
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive", "RUNLEVEL": "1"}
    install = ["apt-get", "install", "-y", "--no-install-recommends", apt_package]
    if subprocess.run(install, env=env, check=False).returncode != 0:
        subprocess.run(["apt-get", "update"], env=env, check=True)
        subprocess.run(install, env=env, check=True)
    found = shutil.which(command) or _in_sbin(command)
    if not found:
        raise SystemExit(f"installed {apt_package} but still cannot find {command}")
    return found


def _in_sbin(command: str) -> str | None:
    for directory in ("/usr/sbin", "/usr/bin", "/sbin"):
        candidate = Path(directory) / command
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return str(candidate)
    return None


def tool_version(argv: Sequence[str]) -> str:
    """First line a tool prints about its version (nginx and wrk print to stderr)."""
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=10, check=False)
    except OSError as error:
        return f"unavailable ({error})"
    lines = (done.stdout + done.stderr).strip().splitlines()
    return lines[0].strip() if lines else "unknown"


# --- addresses ---------------------------------------------------------------------------


def nginx_argv(nginx: str, state: Path, http_body: str) -> list[str]:
    """Write a self-contained nginx.conf under ``state`` (nothing from /etc/nginx) whose
    ``http`` block holds ``http_body``, and return the command that runs it."""
    state.mkdir(parents=True, exist_ok=True)
    head = textwrap.dedent(
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
            # The default (1000 requests) would make wrk and the proxies reconnect every
            # few milliseconds; the benchmarks measure forwarding, not connection setup.
            keepalive_requests 1000000;
            keepalive_timeout 75s;
        """
    )
    conf = state / "nginx.conf"
    conf.write_text(head + textwrap.indent(textwrap.dedent(http_body), "    ") + "}\n")
    # -e: nginx opens its error log before it reads the configuration; keep it here too.
    return [nginx, "-p", str(state), "-e", str(state / "error.log"), "-c", str(conf)]


def free_port(host: str = "127.0.0.1") -> int:
    """A port that was free a moment ago (the kernel picks it; small race accepted)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((host, 0))
        port: int = probe.getsockname()[1]
        return port


def loopback_url(host: str, port: int, path: str) -> str:
    """A load target URL; refuses any host that is not a loopback address."""
    if not ipaddress.ip_address(host).is_loopback:
        raise ValueError(f"load is only ever sent to loopback addresses, not {host}")
    return f"http://{host}:{port}{path}"


# --- CPU pinning -------------------------------------------------------------------------


@dataclass(frozen=True)
class Pinning:
    """Which CPUs the measured target and the load side (wrk + upstream) may use."""

    target_cpus: str | None
    load_cpus: str | None
    reason: str

    @classmethod
    def choose(cls, enabled: bool) -> Pinning:
        """Target on the second allowed CPU, wrk and the upstream on the first, if possible."""
        if not enabled:
            return cls(None, None, "pinning disabled (--no-pin)")
        if shutil.which("taskset") is None:
            return cls(None, None, "not pinned: taskset not found")
        cpus = sorted(os.sched_getaffinity(0))
        if len(cpus) < 2:
            return cls(None, None, f"not pinned: only {len(cpus)} CPU available")
        return cls(
            str(cpus[1]),
            str(cpus[0]),
            f"target on CPU {cpus[1]}; wrk and upstream nginx share CPU {cpus[0]} (taskset -c)",
        )

    def target(self, argv: Sequence[str]) -> list[str]:
        return self._wrap(self.target_cpus, argv)

    def load(self, argv: Sequence[str]) -> list[str]:
        return self._wrap(self.load_cpus, argv)

    @staticmethod
    def _wrap(cpus: str | None, argv: Sequence[str]) -> list[str]:
        return ["taskset", "-c", cpus, *argv] if cpus is not None else list(argv)


# --- processes ---------------------------------------------------------------------------


class Service:
    """One started process (and its children, via its own process group), logging to a file."""

    def __init__(
        self,
        name: str,
        argv: Sequence[str],
        log_path: Path,
        *,
        cwd: Path | None = None,
        env: dict[str, str] | None = None,
    ) -> None:
        self.name = name
        self.argv = list(argv)
        self.log_path = log_path
        self.cwd = cwd
        self.env = env
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with self.log_path.open("wb") as log:
            self.process = subprocess.Popen(
                self.argv,
                cwd=self.cwd,
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # own process group: stop() reaches its children
                preexec_fn=_die_with_parent,
            )

    @property
    def exit_code(self) -> int | None:
        return None if self.process is None else self.process.poll()

    def stop(self, grace_s: float = 5.0) -> None:
        """SIGTERM to the process group, wait, then SIGKILL whatever is left of the group."""
        process = self.process
        if process is None:
            return
        group = process.pid  # == its process group id (start_new_session)
        if process.poll() is None:
            _signal_group(group, signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(timeout=grace_s)
        _signal_group(group, signal.SIGKILL)  # children that outlived the leader
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=grace_s)
        self.process = None

    def cpu_seconds(self) -> float | None:
        """CPU time used so far by the live processes of this service's process group."""
        return None if self.process is None else group_cpu_seconds(self.process.pid)

    def log_tail(self, lines: int = 20) -> list[str]:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return []
        return [line for line in text.splitlines() if line.strip()][-lines:]


def group_cpu_seconds(group: int) -> float:
    """User + system CPU seconds of every live process (all threads) in a process group.

    Read from /proc/<pid>/stat: fields 5 (pgrp), 14 (utime) and 15 (stime), in clock ticks.
    """
    ticks = 0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            text = (entry / "stat").read_text()
        except OSError:
            continue  # exited meanwhile
        fields = text[text.rfind(")") + 2 :].split()
        if int(fields[2]) == group:
            ticks += int(fields[11]) + int(fields[12])
    return ticks / os.sysconf("SC_CLK_TCK")


def _die_with_parent() -> None:
    """In the child before exec: get SIGTERM if the benchmark itself is killed (SIGKILL).

    The ``finally`` cleanup cannot run after SIGKILL; Linux's parent-death signal still
    stops the direct child (nginx master, granian main process), which stops its workers.
    """
    if sys.platform == "linux":
        with contextlib.suppress(OSError, AttributeError):
            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


_PR_SET_PDEATHSIG = 1


def _signal_group(group: int, signum: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(group, signum)


class ServiceGroup:
    """Starts services and guarantees they are all stopped when the ``with`` block ends."""

    def __init__(self) -> None:
        self._services: list[Service] = []

    def __enter__(self) -> ServiceGroup:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop_all()

    def start(self, service: Service) -> Service:
        self._services.append(service)
        service.start()
        return service

    def stop(self, service: Service) -> None:
        service.stop()
        if service in self._services:
            self._services.remove(service)

    def stop_all(self) -> None:
        # A second Ctrl-C must not interrupt the cleanup and leave nginx behind.
        previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
        try:
            for service in reversed(self._services):
                service.stop()
            self._services.clear()
        finally:
            signal.signal(signal.SIGINT, previous)


@contextlib.contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """SIGTERM and SIGINT raise KeyboardInterrupt, so ``finally`` blocks stop every process.

    SIGINT is set explicitly because a shell without job control starts background
    commands with SIGINT ignored, and Python keeps it ignored.
    """

    def _raise(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    previous_term = signal.signal(signal.SIGTERM, _raise)
    previous_int = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous_term)
        signal.signal(signal.SIGINT, previous_int)


def wait_until_serving(
    service: Service,
    host: str,
    port: int,
    path: str,
    expected_body: bytes,
    timeout_s: float = 20.0,
) -> str | None:
    """Poll (TCP connect, then a real GET) until the body comes back; the problem or None."""
    deadline = time.monotonic() + timeout_s
    problem = "never accepted a connection"
    while time.monotonic() < deadline:
        code = service.exit_code
        if code is not None:
            tail = service.log_tail(1)
            return f"exited with code {code}" + (f": {tail[0][:200]}" if tail else "")
        try:
            with socket.create_connection((host, port), timeout=0.5):
                pass
        except OSError:
            time.sleep(0.1)
            continue
        answer = _probe(host, port, path, expected_body)
        if answer is None:
            return None
        problem = answer
        time.sleep(0.2)
    return f"not serving after {timeout_s:g} s: {problem}"


def _probe(host: str, port: int, path: str, expected_body: bytes) -> str | None:
    connection = http.client.HTTPConnection(host, port, timeout=5)
    try:
        connection.request("GET", path)
        response = connection.getresponse()
        body = response.read()
    except (OSError, http.client.HTTPException) as error:
        return f"GET {path} failed: {error!r}"
    finally:
        connection.close()
    if response.status != 200 or body != expected_body:
        return (
            f"GET {path} answered {response.status} {body[:80]!r}, expected 200 {expected_body!r}"
        )
    return None


# --- wrk ---------------------------------------------------------------------------------


@dataclass
class WrkResult:
    """What one wrk run measured; ``errors`` counts every failed or non-2xx/3xx request."""

    requests_per_s: float
    requests: int
    p50_ms: float | None
    p90_ms: float | None
    p99_ms: float | None
    non_2xx_3xx: int
    socket_errors: dict[str, int] = field(default_factory=dict)

    @property
    def errors(self) -> int:
        return self.non_2xx_3xx + sum(self.socket_errors.values())

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "errors": self.errors}


_UNIT_MS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0, "h": 3_600_000.0}


def _duration_ms(text: str) -> float:
    match = re.fullmatch(r"([\d.]+)(us|ms|s|m|h)", text)
    if match is None:
        raise ValueError(f"unexpected wrk duration {text!r}")
    return float(match[1]) * _UNIT_MS[match[2]]


def parse_wrk(output: str) -> WrkResult:
    """Parse ``wrk --latency`` output (wrk 4.x)."""
    rps = re.search(r"^Requests/sec:\s+([\d.]+)", output, re.MULTILINE)
    total = re.search(r"^\s*(\d+) requests in ", output, re.MULTILINE)
    if rps is None or total is None:
        raise ValueError("wrk printed no summary:\n" + output)
    percentiles = {
        int(match[1]): _duration_ms(match[2])
        for match in re.finditer(r"^\s+(50|90|99)(?:\.0+)?%\s+(\S+)", output, re.MULTILINE)
    }
    non_2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", output)
    sockets = re.search(
        r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output
    )
    socket_errors = (
        dict(zip(("connect", "read", "write", "timeout"), map(int, sockets.groups()), strict=True))
        if sockets
        else {}
    )
    return WrkResult(
        requests_per_s=float(rps[1]),
        requests=int(total[1]),
        p50_ms=percentiles.get(50),
        p90_ms=percentiles.get(90),
        p99_ms=percentiles.get(99),
        non_2xx_3xx=int(non_2xx[1]) if non_2xx else 0,
        socket_errors=socket_errors,
    )


def run_wrk(
    wrk: str,
    url: str,
    *,
    duration_s: float,
    connections: int,
    threads: int,
    pinning: Pinning,
) -> WrkResult:
    """One wrk run against a loopback URL, pinned to the load CPUs."""
    argv = pinning.load(
        [
            wrk,
            f"-t{threads}",
            f"-c{connections}",
            f"-d{duration_s:g}s",  # wrk takes whole seconds only
            "--latency",
            url,
        ]
    )
    done = subprocess.run(
        argv, capture_output=True, text=True, timeout=duration_s + 30, check=False
    )
    if done.returncode != 0:
        output = (done.stderr.strip() or done.stdout.strip()).splitlines()
        raise RuntimeError(f"wrk failed ({done.returncode}): {' '.join(output[:2])}")
    return parse_wrk(done.stdout)


# --- statistics and output ---------------------------------------------------------------


@dataclass(frozen=True)
class Spread:
    median: float
    minimum: float
    maximum: float

    @classmethod
    def of(cls, values: Sequence[float]) -> Spread | None:
        if not values:
            return None
        return cls(statistics.median(values), min(values), max(values))

    @property
    def relative(self) -> float:
        """(max - min) / median: how far apart the rounds were."""
        return (self.maximum - self.minimum) / self.median if self.median else 0.0


def median_or_none(values: Sequence[float | None]) -> float | None:
    present = [value for value in values if value is not None]
    return statistics.median(present) if present else None


def format_table(headers: Sequence[str], rows: Sequence[Sequence[str]], right: set[int]) -> str:
    """Plain aligned columns; column indexes in ``right`` are right-aligned (numbers)."""
    widths = [len(header) for header in headers]
    for row in rows:
        widths = [max(width, len(cell)) for width, cell in zip(widths, row, strict=True)]

    def line(cells: Sequence[str]) -> str:
        return "  ".join(
            cell.rjust(width) if index in right else cell.ljust(width)
            for index, (cell, width) in enumerate(zip(cells, widths, strict=True))
        ).rstrip()

    rule = "  ".join("-" * width for width in widths)
    return "\n".join([line(headers), rule, *(line(row) for row in rows)])


def machine_info(tools: dict[str, Sequence[str]], packages: Sequence[str]) -> dict[str, Any]:
    """What the numbers were measured on; ``tools`` maps a name to its version command."""
    versions: dict[str, str | None] = {}
    for package in packages:
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            versions[package] = None
    return {
        "nproc": os.cpu_count(),
        "cpus_allowed": sorted(os.sched_getaffinity(0)),
        "cpu_model": _cpu_model(),
        "memory_gib": _memory_gib(),
        "platform": platform.platform(),
        "python": sys.version.split()[0],
        "python_implementation": platform.python_implementation(),
        "load_average_at_start": list(os.getloadavg()),
        "tools": {name: tool_version(argv) for name, argv in tools.items()},
        "packages": versions,
        "git_commit": _git_commit(),
    }


def _cpu_model() -> str | None:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return None


def _memory_gib() -> float | None:
    with contextlib.suppress(OSError, ValueError, IndexError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return round(int(line.split()[1]) / 1024 / 1024, 1)
    return None


def _git_commit() -> str | None:
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        done = subprocess.run(
            ["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            timeout=5,
            check=False,
        )
        if done.returncode == 0:
            return done.stdout.strip()
    return None


def utc_timestamp() -> tuple[str, str]:
    """(ISO 8601 time, file-name-safe stamp) for now in UTC."""
    now = datetime.now(UTC).replace(microsecond=0)
    return now.isoformat().replace("+00:00", "Z"), now.strftime("%Y%m%dT%H%M%SZ")


def write_results(directory: Path, name: str, stamp: str, data: dict[str, Any]) -> list[Path]:
    """Write ``<name>-<stamp>.json`` and ``<name>-latest.json`` (atomically, via .tmp)."""
    directory.mkdir(parents=True, exist_ok=True)
    text = json.dumps(data, indent=2, sort_keys=False) + "\n"
    written = []
    for path in (directory / f"{name}-{stamp}.json", directory / f"{name}-latest.json"):
        temporary = path.with_suffix(".tmp")
        temporary.write_text(text)
        temporary.replace(path)
        written.append(path)
    return written
