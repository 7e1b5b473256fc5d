"""Abuse of the gateway itself: slowloris, idle keep-alive floods, clients that stop reading,
floods to unknown paths; normal requests' latency and the gateway's memory meanwhile.

    .venv/bin/python -m bench.gateway_abuse                   # every case, full size
    .venv/bin/python -m bench.gateway_abuse --quick           # small numbers (make test)
    .venv/bin/python -m bench.gateway_abuse --case slowloris --case idle
    options: --seconds S (per case)  --json PATH

Starts ``dijk demo`` on loopback. A prober (this process, one fresh connection per request,
~40 requests/s) measures the latency of normal requests (``GET /api/v1/accounts/1`` with
the write key) first on a quiet gateway, then during each case. The abusers run in a
child process (so their work does not slow the prober's own measurement) and come from
other loopback addresses (127.0.1.x …), spread so that no address passes the demo's
``limits.max_connections_per_ip`` (256): the gateway has to hold every connection.

Cases (full size / ``--quick``):

* ``slowloris``: 2,000 / 200 connections sending a header line byte by byte, never ending
  the headers (the demo's ``header_timeout_s`` is 10 s);
* ``idle``: 10,000 / 500 keep-alive connections, each after one complete request, then
  silent (``keepalive_timeout_s`` 60 s);
* ``noread``: 200 / 20 connections pipelining 50 requests for the OpenAPI document each
  and never reading an answer;
* ``flood``: unknown paths (404 ``route.not_found``) from 64 / 8 connections as fast as
  they go, bounded in count and time.

A case passes when normal requests' p99 stays within twice the quiet p99 and none of them
fails, and the gateway's RSS stays under the bound given by its configuration
(``limits.max_buffered_body_bytes`` over the quiet RSS).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import multiprocessing
import resource
import socket
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tests.support.demo import DemoProcess, start_demo  # noqa: E402

from bench.fuzz_live import rss_kib, send  # noqa: E402

MAX_BUFFERED_BODY_BYTES = 64 * 1024 * 1024  # the demo's limits.max_buffered_body_bytes
PER_ADDRESS = 200  # connections per source address, under max_connections_per_ip (256)
FULL = {"slowloris": 2000, "idle": 10_000, "noread": 200, "flood": 64}
QUICK = {"slowloris": 200, "idle": 500, "noread": 20, "flood": 8}


def raise_fd_limit() -> int:
    """Raise this process's open-file limit to its hard limit; the new soft limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def source(index: int) -> str:
    """A loopback source address for the index-th abusive connection (not 127.0.0.1)."""
    block = index // PER_ADDRESS
    return f"127.0.{1 + block // 250}.{1 + block % 250}"


async def _open(port: int, index: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    return await asyncio.open_connection("127.0.0.1", port, local_addr=(source(index), 0))


async def _slowloris(port: int, n: int, seconds: float, stats: dict[str, int]) -> None:
    async def one(i: int) -> None:
        try:
            reader, writer = await _open(port, i)
        except OSError:
            stats["connect_failed"] += 1
            return
        stats["opened"] += 1
        line = b"GET /api/v1/status HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: " + b"a" * 4000
        deadline = time.monotonic() + seconds
        pos = 0
        try:
            while time.monotonic() < deadline and pos < len(line):
                writer.write(line[pos : pos + 1])
                await writer.drain()
                pos += 1
                try:
                    data = await asyncio.wait_for(reader.read(4096), 1.0)
                except TimeoutError:
                    continue
                if data.startswith(b"HTTP/1.1 408"):
                    stats["answered_408"] += 1
                elif data:
                    stats["answered_other"] += 1
                stats["closed_by_gateway"] += 1
                return
        except OSError:
            stats["closed_by_gateway"] += 1
        finally:
            writer.close()

    await asyncio.gather(*(one(i) for i in range(n)))


async def _idle(port: int, n: int, seconds: float, stats: dict[str, int]) -> None:
    request = b"GET /api/v1/status HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
    writers: list[asyncio.StreamWriter] = []
    gate = asyncio.Semaphore(64)
    deadline = time.monotonic() + seconds

    async def one(i: int) -> None:
        async with gate:
            if time.monotonic() > deadline:
                return
            try:
                reader, writer = await _open(port, i)
                writer.write(request)
                head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
            except (OSError, TimeoutError, asyncio.IncompleteReadError):
                stats["failed"] += 1
                return
            stats["ok" if head.startswith(b"HTTP/1.1 200") else "refused"] += 1
            writers.append(writer)

    await asyncio.gather(*(one(i) for i in range(n)))
    stats["held_idle"] = len(writers)
    await asyncio.sleep(max(0.0, deadline - time.monotonic()))
    for writer in writers:
        writer.close()


async def _noread(port: int, n: int, seconds: float, stats: dict[str, int]) -> None:
    request = b"GET /api/v1/openapi.yaml HTTP/1.1\r\nHost: 127.0.0.1\r\nX-API-Key: {key}\r\n\r\n"
    writers: list[asyncio.StreamWriter] = []
    for i in range(n):
        try:
            sock = socket.socket()
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            sock.bind((source(i), 0))
            sock.setblocking(False)
            await asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", port))
            _, writer = await asyncio.open_connection(sock=sock)
            writer.write(request.replace(b"{key}", NOREAD_KEY.encode()) * 50)
            writers.append(writer)
            stats["opened"] += 1
        except OSError:
            stats["connect_failed"] += 1
    await asyncio.sleep(seconds)
    for writer in writers:
        writer.transport.abort()


NOREAD_KEY = ""


async def _flood(port: int, n: int, seconds: float, stats: dict[str, int]) -> None:
    deadline = time.monotonic() + seconds
    limit = 200_000

    async def one(i: int) -> None:
        while time.monotonic() < deadline and stats["sent"] < limit:
            try:
                reader, writer = await _open(port, i)
                for _ in range(100):
                    if time.monotonic() >= deadline:
                        break
                    writer.write(f"GET /nope/{stats['sent']} HTTP/1.1\r\nHost: a\r\n\r\n".encode())
                    stats["sent"] += 1
                    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
                    length = 0
                    for line in head.split(b"\r\n"):
                        if line.lower().startswith(b"content-length:"):
                            length = int(line.split(b":")[1])
                    await reader.readexactly(length)
                    stats["404" if head.startswith(b"HTTP/1.1 404") else "other"] += 1
                writer.close()
            except (OSError, TimeoutError, asyncio.IncompleteReadError):
                stats["failed"] += 1

    await asyncio.gather(*(one(i * PER_ADDRESS) for i in range(n)))


CASES = {"slowloris": _slowloris, "idle": _idle, "noread": _noread, "flood": _flood}


def _abuser(
    case: str, port: int, n: int, seconds: float, key: str, out: multiprocessing.Queue[object]
) -> None:
    global NOREAD_KEY
    NOREAD_KEY = key
    raise_fd_limit()
    stats: dict[str, int] = _Counter()
    asyncio.run(CASES[case](port, n, seconds, stats))
    out.put(dict(stats))


class _Counter(dict[str, int]):
    def __missing__(self, key: str) -> int:
        return 0


# --------------------------------------------------------------------------- probing


@dataclass
class Probe:
    latencies: list[float] = field(default_factory=list)
    failures: int = 0

    def p(self, q: float) -> float:
        if not self.latencies:
            return float("nan")
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def probe(demo: DemoProcess, seconds: float, rate: float = 40.0) -> Probe:
    request = (
        f"GET /api/v1/accounts/1 HTTP/1.1\r\nHost: 127.0.0.1\r\nX-API-Key: {demo.write_key}\r\n"
        "Connection: close\r\n\r\n"
    ).encode()
    result = Probe()
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        started = time.monotonic()
        responses, failure = send(demo.port, request)
        elapsed = time.monotonic() - started
        if failure or not responses or responses[0].status != 200:
            result.failures += 1
        else:
            result.latencies.append(elapsed)
        time.sleep(max(0.0, 1 / rate - elapsed))
    return result


def run_case(demo: DemoProcess, case: str, n: int, seconds: float) -> dict[str, object]:
    context = multiprocessing.get_context("spawn")
    queue: multiprocessing.Queue[object] = context.Queue()
    child = context.Process(
        target=_abuser, args=(case, demo.port, n, seconds, demo.write_key, queue), daemon=True
    )
    child.start()
    time.sleep(min(5.0, seconds / 3))  # let the abusers get going
    peak = rss_kib(demo.process.pid)
    during = Probe()
    deadline = time.monotonic() + seconds - min(5.0, seconds / 3)
    while time.monotonic() < deadline:
        chunk = probe(demo, min(1.0, max(0.1, deadline - time.monotonic())))
        during.latencies += chunk.latencies
        during.failures += chunk.failures
        peak = max(peak, rss_kib(demo.process.pid))
    try:
        stats = queue.get(timeout=seconds + 60)
    except Exception:
        stats = {"error": "the abusers did not finish"}
    child.join(10)
    if child.is_alive():
        child.kill()
    return {
        "case": case,
        "connections": n,
        "abusers": stats,
        "probes": len(during.latencies),
        "probe_failures": during.failures,
        "p50_ms": round(during.p(0.5) * 1000, 2),
        "p99_ms": round(during.p(0.99) * 1000, 2),
        "rss_peak_kib": peak,
    }


def run(
    cases: list[str], quick: bool, seconds: float, data_dir: Path | None = None
) -> dict[str, object]:
    limit = raise_fd_limit()
    work = Path(tempfile.mkdtemp(prefix="dijk-abuse-")) if data_dir is None else data_dir
    demo = start_demo(work / ".dijk", timeout=60)
    sizes = QUICK if quick else FULL
    results: list[dict[str, object]] = []
    try:
        probe(demo, 2.0)  # warm-up
        quiet = probe(demo, 5.0 if quick else 10.0)
        quiet_rss = rss_kib(demo.process.pid)
        for case in cases:
            result = run_case(demo, case, sizes[case], seconds)
            ratio = float(str(result["p99_ms"])) / (quiet.p(0.99) * 1000)
            result["p99_ratio"] = round(ratio, 2)
            bound_kib = quiet_rss + MAX_BUFFERED_BODY_BYTES // 1024
            result["ok"] = (
                ratio <= 2.0
                and result["probe_failures"] == 0
                and int(str(result["rss_peak_kib"])) <= bound_kib
            )
            results.append(result)
            time.sleep(2.0)  # let closed connections drain before the next case
        alive = demo.process.poll() is None
    finally:
        demo.stop(timeout=30)
    return {
        "fd_limit": limit,
        "quiet_p50_ms": round(quiet.p(0.5) * 1000, 2),
        "quiet_p99_ms": round(quiet.p(0.99) * 1000, 2),
        "quiet_rss_kib": quiet_rss,
        "rss_bound_kib": quiet_rss + MAX_BUFFERED_BODY_BYTES // 1024,
        "alive": alive,
        "cases": results,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--case", action="append", choices=sorted(CASES))
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    result = run(args.case or list(CASES), args.quick, args.seconds)
    print(json.dumps(result, indent=2))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))
    cases = result["cases"]
    assert isinstance(cases, list)
    ok = bool(result["alive"]) and all(case["ok"] for case in cases)
    print("PASS" if ok else "FAIL")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
