"""Soak: the full demo policy at half of its measured maximum rate for N minutes.

    .venv/bin/python -m bench.soak                       # 30 minutes
    .venv/bin/python -m bench.soak --minutes 3 --png docs/soak.png --json soak.json
    options: --clients N (keep-alive connections)  --calibrate S  --rate R (skip calibration)

Starts ``dijk demo`` on loopback. First measures the maximum rate: ``--clients``
keep-alive connections send the request mix back to back for ``--calibrate`` seconds.
Then sends the same mix open-loop at half that rate (each request has its time slot;
latency counts from the slot, so a stall is not hidden by the client waiting). Every 10 s
it samples p50/p99 of the last window and the gateway's RSS. The mix goes through every
stage of the demo: API keys, scopes, rate limits, OpenAPI validation, the WAF, privacy
masking, discovery and the audit log: ``GET /api/v1/accounts/{id}``,
``GET /api/v1/search?q=``, ``POST /api/v1/tickets`` (JSON), ``POST /graphql``,
``GET /api/v1/status``.

It passes when neither p99 nor RSS drifts upward by more than 5 %: the median of the last
third of the windows against the median of the first third (the first window, the
warm-up, left out), and when no request failed. It also reports the drift of the
gateway's own CPU time per request, which other processes on a shared machine do not
move (latency they do). The plot (matplotlib, ``pip install .[bench]``) shows p50, p99,
RSS and CPU per request per window.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tests.support.demo import start_demo  # noqa: E402

from bench.fuzz_live import rss_kib  # noqa: E402

WINDOW_S = 10.0
TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process (from /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def requests_mix(key: str) -> list[bytes]:
    def request(method: str, path: str, body: bytes = b"") -> bytes:
        head = f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nX-API-Key: {key}\r\n"
        if method == "POST":
            head += f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
        return head.encode() + b"\r\n" + body

    ticket = json.dumps(
        {"subject": "Card blocked", "description": "My card was blocked after a payment."}
    ).encode()
    graphql = json.dumps({"query": "{ account(id: 7) { id name email } }"}).encode()
    return [
        request("GET", "/api/v1/accounts/7"),
        request("GET", "/api/v1/search?q=jansen"),
        request("POST", "/api/v1/tickets", ticket),
        request("POST", "/graphql", graphql),
        request("GET", "/api/v1/status"),
    ]


async def _exchange(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, data: bytes) -> int:
    writer.write(data)
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 30)
    status = int(head.split(b" ", 2)[1])
    headers = {
        line.split(b":", 1)[0].strip().lower(): line.split(b":", 1)[1].strip()
        for line in head.split(b"\r\n")[1:]
        if b":" in line
    }
    if b"content-length" in headers:
        await reader.readexactly(int(headers[b"content-length"]))
    elif headers.get(b"transfer-encoding", b"").lower() == b"chunked":
        while True:
            size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
            await reader.readexactly(size + 2)
            if size == 0:
                break
    return status


class Load:
    def __init__(self, port: int, mix: list[bytes], clients: int) -> None:
        self.port = port
        self.mix = mix
        self.clients = clients
        self.latencies: list[float] = []
        self.failures = 0
        self.statuses: dict[int, int] = {}
        self.sent = 0

    def note(self, status: int, latency: float) -> None:
        self.statuses[status] = self.statuses.get(status, 0) + 1
        if status >= 400:
            self.failures += 1
        else:
            self.latencies.append(latency)

    async def closed_loop(self, seconds: float) -> float:
        """Back to back on every connection: the rate reached (requests/s)."""
        deadline = time.monotonic() + seconds
        done = 0

        async def client(index: int) -> None:
            nonlocal done
            reader, writer = await asyncio.open_connection("127.0.0.1", self.port)
            i = index
            while time.monotonic() < deadline:
                self.note(await _exchange(reader, writer, self.mix[i % len(self.mix)]), 0.0)
                done += 1
                i += 1
            writer.close()

        started = time.monotonic()
        await asyncio.gather(*(client(i) for i in range(self.clients)))
        return done / (time.monotonic() - started)

    async def open_loop(self, rate: float, seconds: float, on_window: object) -> None:
        """``rate`` requests/s on time slots for ``seconds``; on_window() every WINDOW_S."""
        queue: asyncio.Queue[float] = asyncio.Queue(maxsize=self.clients * 4)
        started = time.monotonic()
        total = int(rate * seconds)

        async def scheduler() -> None:
            for n in range(total):
                slot = started + n / rate
                delay = slot - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
                await queue.put(slot)
            for _ in range(self.clients):
                await queue.put(-1.0)

        async def client(index: int) -> None:
            reader, writer = await asyncio.open_connection("127.0.0.1", self.port)
            i = index
            while (slot := await queue.get()) >= 0:
                try:
                    status = await _exchange(reader, writer, self.mix[i % len(self.mix)])
                except (OSError, TimeoutError, asyncio.IncompleteReadError):
                    self.failures += 1
                    writer.close()
                    reader, writer = await asyncio.open_connection("127.0.0.1", self.port)
                    continue
                self.note(status, time.monotonic() - slot)
                i += 1
            writer.close()

        async def windows() -> None:
            while True:
                await asyncio.sleep(WINDOW_S)
                on_window()  # type: ignore[operator]

        ticker = asyncio.create_task(windows())
        await asyncio.gather(scheduler(), *(client(i) for i in range(self.clients)))
        ticker.cancel()


def drift(values: list[float]) -> float:
    """Median of the last third against the first third (the first value left out)."""
    values = values[1:]
    if len(values) < 3:
        return 0.0
    third = len(values) // 3
    first = statistics.median(values[:third])
    last = statistics.median(values[-third:])
    return (last - first) / first if first else 0.0


def plot(samples: list[dict[str, float]], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    t = [s["t_s"] / 60 for s in samples]
    figure, left = plt.subplots(figsize=(9, 3.8), dpi=110)
    left.plot(t, [s["p99_ms"] for s in samples], color="tab:red", marker=".", label="p99 (ms)")
    left.plot(t, [s["p50_ms"] for s in samples], color="tab:orange", marker=".", label="p50 (ms)")
    left.set_xlabel("minutes")
    left.set_ylabel("latency (ms)")
    left.set_ylim(bottom=0)
    right = left.twinx()
    right.plot(t, [s["rss_mib"] for s in samples], color="tab:blue", marker=".", label="RSS (MiB)")
    right.set_ylabel("gateway RSS (MiB)")
    right.set_ylim(bottom=0)
    cpu = left.twinx()
    cpu.spines["right"].set_position(("axes", 1.12))
    cpu.plot(
        t,
        [s["cpu_ms_per_request"] for s in samples],
        color="tab:green",
        marker=".",
        label="gateway CPU per request (ms)",
    )
    cpu.set_ylabel("CPU ms / request")
    cpu.set_ylim(bottom=0)
    lines = left.get_lines() + right.get_lines() + cpu.get_lines()
    left.legend(lines, [str(line.get_label()) for line in lines], loc="upper left", fontsize=8)
    left.set_title(title, fontsize=10)
    figure.tight_layout()
    figure.savefig(path)
    plt.close(figure)


def run(
    minutes: float, clients: int, calibrate_s: float, rate: float | None, data_dir: Path | None
) -> dict[str, object]:
    work = Path(tempfile.mkdtemp(prefix="dijk-soak-")) if data_dir is None else data_dir
    demo = start_demo(work / ".dijk", timeout=60)
    mix = requests_mix(demo.write_key)
    samples: list[dict[str, float]] = []
    try:
        maximum = 0.0
        if rate is None:
            calibration = Load(demo.port, mix, clients)
            maximum = asyncio.run(calibration.closed_loop(calibrate_s))
            rate = maximum / 2
        load = Load(demo.port, mix, clients)
        started = time.monotonic()
        seen = 0
        cpu_before = cpu_seconds(demo.process.pid)

        def on_window() -> None:
            nonlocal seen, cpu_before
            window = sorted(load.latencies[seen:])
            seen = len(load.latencies)
            cpu = cpu_seconds(demo.process.pid)
            cpu_used, cpu_before = cpu - cpu_before, cpu
            if not window:
                return
            samples.append(
                {
                    "t_s": round(time.monotonic() - started, 1),
                    "requests": len(window),
                    "p50_ms": round(window[len(window) // 2] * 1000, 2),
                    "p99_ms": round(
                        window[min(len(window) - 1, int(0.99 * len(window)))] * 1000, 2
                    ),
                    "rss_mib": round(rss_kib(demo.process.pid) / 1024, 1),
                    # The gateway's own CPU per request: unlike latency, it does not rise
                    # when other processes take the cores.
                    "cpu_ms_per_request": round(cpu_used * 1000 / len(window), 3),
                }
            )

        asyncio.run(load.open_loop(rate, minutes * 60, on_window))
        alive = demo.process.poll() is None
    finally:
        demo.stop(timeout=30)
    return {
        "minutes": minutes,
        "max_rate": round(maximum, 1),
        "rate": round(rate, 1),
        "requests": len(load.latencies) + load.failures,
        "failures": load.failures,
        "statuses": load.statuses,
        "alive": alive,
        "p99_drift": round(drift([s["p99_ms"] for s in samples]), 4),
        "rss_drift": round(drift([s["rss_mib"] for s in samples]), 4),
        "cpu_per_request_drift": round(drift([s["cpu_ms_per_request"] for s in samples]), 4),
        "load_average": Path("/proc/loadavg").read_text().split()[:3],
        "samples": samples,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=30.0)
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--calibrate", type=float, default=20.0)
    parser.add_argument("--rate", type=float, help="requests/s (skips the calibration)")
    parser.add_argument("--png", type=Path)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    result = run(args.minutes, args.clients, args.calibrate, args.rate, None)
    print(json.dumps({k: v for k, v in result.items() if k != "samples"}, indent=2))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))
    if args.png:
        samples = result["samples"]
        assert isinstance(samples, list)
        plot(
            samples,
            args.png,
            f"dijk demo, {result['rate']} req/s"
            + (f" (half of {result['max_rate']})" if result["max_rate"] else "")
            + f", {args.minutes:g} min",
        )
    ok = (
        bool(result["alive"])
        and result["failures"] == 0
        and float(str(result["p99_drift"])) <= 0.05
        and float(str(result["rss_drift"])) <= 0.05
    )
    print("PASS" if ok else "FAIL")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
