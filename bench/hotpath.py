"""Hot path: Python CPU time per request of Dijk's server + gateway, without sockets.

Drives the real code — ``HttpProtocol`` (llhttp parsing, framing checks), ``Gateway``
(request id, routing, pipeline, metrics) and ``UpstreamConnection`` (httptools response
parsing) — through fake transports, in one event loop, one request at a time. What is left
out is exactly the part no Python change can touch: system calls and the kernel's loopback.
So the number printed is the cost that our code controls.

The peer, measured in the same process and rounds, is the ``native_pool`` variant
(``bench/variants/native_pool.py``): a bare uvloop + httptools server with the lean pool,
driven through the same fakes. Its cost is the floor for a Python proxy on this stack, so
``x native`` says how much Dijk's safety and structure cost on top of it.

    .venv/bin/python bench/hotpath.py                      # 5 rounds x 20 000 requests
    .venv/bin/python bench/hotpath.py --rounds 9 --requests 50000
    .venv/bin/python bench/hotpath.py --profile            # cProfile of Dijk, top 30
    .venv/bin/python bench/hotpath.py --targets dijk --scenario full-policy-post
    py-spy record -o hot.svg -- .venv/bin/python bench/hotpath.py --targets dijk --rounds 20

CPU time is ``time.process_time()`` of this process (GC included, as in production). Rounds
alternate the targets so that a busy moment of the machine hits both; the table reports the
median and the min-max over rounds. On a shared machine CPU time still moves 20-50 % from
run to run: compare versions by alternating runs and reading ``x native``, or count
instructions, which load does not change — run ``--targets dijk --rounds 1`` under
``valgrind --tool=cachegrind --cache-sim=no`` with ``--requests 200`` and ``2200`` and
divide the difference of the two ``I refs`` by 2000 (about 240 k instructions per request
at the time of writing, against 106 k for ``native``).
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import gc
import io
import os
import pstats
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a file: python bench/hotpath.py
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import uvloop

# The empty pipeline of bench/proxy.py's ``dijk`` target; ``--audit`` adds the audit log
# (its default, batched durability) with its database in a temporary directory.
CONFIG = """
version: 1
upstreams: {fixed: {url: "http://127.0.0.1:9"}}
routes: [{name: all, match: {path_prefix: /}, upstream: fixed}]
"""
NO_AUDIT = "audit: {enabled: false}\n"
AUDIT = 'audit: {{url: "sqlite:///{directory}/audit.db", spool_dir: "{directory}/spool"}}\n'
# What the benchmark's nginx upstream answers to GET /bench, and what wrk sends.
RESPONSE = (
    b"HTTP/1.1 200 OK\r\nServer: nginx\r\nDate: Wed, 25 Nov 2026 12:00:00 GMT\r\n"
    b"Content-Type: application/octet-stream\r\nContent-Length: 15\r\n"
    b'Connection: keep-alive\r\n\r\n{"status":"ok"}'
)
REQUEST = b"GET /bench HTTP/1.1\r\nHost: 127.0.0.1:8080\r\n\r\n"
# The full policy users run (bench/inputs/, as bench/proxy.py's full-policy targets): API
# key, a rate limit that never triggers, OpenAPI enforce, WAF paranoia 1, audit on.
INPUTS = Path(__file__).resolve().parent / "inputs"
API_KEY = "hotpath-bench-key-0123456789abcdef"
FULL_POLICY = """
version: 1
upstreams: {{fixed: {{url: "http://127.0.0.1:9"}}}}
consumers: [{{name: bench, api_keys: [{{env: DIJK_HOTPATH_KEY}}]}}]
auth: {{api_key: {{header: X-API-Key}}}}
routes:
  - name: api
    match: {{path_prefix: /api}}
    upstream: fixed
    auth: [api_key]
    rate_limit: [{{key: consumer, limit: 1000000000, per_s: 60}}]
    openapi: {{spec: "{inputs}/full-policy-openapi.yaml", mode: enforce}}
    waf: {{mode: block, paranoia: 1}}
"""
SCENARIOS = {
    "get": REQUEST,
    "full-policy-get": (
        b"GET /api/users/1?q=hello HTTP/1.1\r\nHost: 127.0.0.1:8080\r\n"
        b"X-API-Key: " + API_KEY.encode() + b"\r\n\r\n"
    ),
    "full-policy-post": (
        b"POST /api/users HTTP/1.1\r\nHost: 127.0.0.1:8080\r\n"
        b"X-API-Key: " + API_KEY.encode() + b"\r\nContent-Type: application/json\r\n"
    ),
}
WARMUP = 1000

Step = Callable[[], Awaitable[None]]
_CLOSERS: list[Callable[[], Awaitable[None]]] = []
# process_time (every thread: the audit log's database thread included) or thread_time
# (the event loop's thread alone: the request path).
_CLOCK: list[Callable[[], float]] = [time.process_time]


class _UpstreamTransport:
    """Answers every write with ``RESPONSE`` on the next loop iteration."""

    def __init__(self, protocol: asyncio.Protocol) -> None:
        self._protocol = protocol
        self._loop = asyncio.get_running_loop()
        self.closing = False

    def write(self, data: bytes) -> None:
        self._loop.call_soon(self._protocol.data_received, RESPONSE)

    def is_closing(self) -> bool:
        return self.closing

    def close(self) -> None:
        self.closing = True

    def pause_reading(self) -> None:
        return None

    def resume_reading(self) -> None:
        return None

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return default


class _ClientTransport:
    """Counts responses; resolves ``done`` when the proxy writes its answer."""

    def __init__(self) -> None:
        self.closing = False
        self.done: asyncio.Future[None] | None = None
        self.last = b""

    def write(self, data: bytes) -> None:
        self.last = data
        if self.done is not None and not self.done.done():
            self.done.set_result(None)

    def is_closing(self) -> bool:
        return self.closing

    def close(self) -> None:
        self.closing = True

    def pause_reading(self) -> None:
        return None

    def resume_reading(self) -> None:
        return None

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return ("127.0.0.1", 5555) if name == "peername" else default


def _request(scenario: str) -> bytes:
    head = SCENARIOS[scenario]
    if not scenario.endswith("-post"):
        return head
    body = (INPUTS / "full-policy-body.json").read_bytes().strip()
    return head + b"Content-Length: %d\r\n\r\n" % len(body) + body


def _driver(protocol: asyncio.Protocol, transport: _ClientTransport, request: bytes) -> Step:
    loop = asyncio.get_running_loop()

    async def one() -> None:
        transport.done = loop.create_future()
        protocol.data_received(request)
        await transport.done
        await asyncio.sleep(0)  # let the handler task finish its log phase and metrics

    return one


async def dijk_step(audit_dir: str | None, scenario: str = "get") -> Step:
    from dijk.config import load_config_text
    from dijk.proxy import upstream
    from dijk.proxy.gateway import Gateway
    from dijk.proxy.http1 import HttpProtocol, ServerLimits
    from dijk.proxy.state import build_state

    async def connect(pool: upstream.UpstreamPool) -> upstream.UpstreamConnection:
        connection = upstream.UpstreamConnection(pool)
        connection.connection_made(_UpstreamTransport(connection))  # type: ignore[arg-type]
        return connection

    upstream.UpstreamPool.connect = connect  # type: ignore[method-assign]
    audit = AUDIT.format(directory=audit_dir) if audit_dir else NO_AUDIT
    config = CONFIG
    if scenario.startswith("full-policy"):
        os.environ["DIJK_HOTPATH_KEY"] = API_KEY
        config = FULL_POLICY.format(inputs=INPUTS)
    state = build_state(load_config_text(config + audit, "hotpath"), 1, "hotpath")
    await state.start()  # as GatewayServer.start: opens the audit log when there is one
    _CLOSERS.append(state.close)  # flushes and closes the audit log (its thread)
    protocol = HttpProtocol(Gateway(state), ServerLimits())
    transport = _ClientTransport()
    protocol.connection_made(transport)  # type: ignore[arg-type]
    step = _driver(protocol, transport, _request(scenario))
    await step()
    if not transport.last.startswith(b"HTTP/1.1 200"):
        raise SystemExit(f"scenario {scenario} was not answered 200: {transport.last[:300]!r}")
    return step


async def native_step(audit_dir: str | None, scenario: str = "get") -> Step:
    from bench.variants import _pool, native_pool

    pool = _pool.UpstreamPool("127.0.0.1", 9)

    async def acquire() -> tuple[_pool._Connection, bool]:
        while pool._idle:
            connection = pool._idle.pop()
            if connection.is_open:
                return connection, True
        connection = _pool._Connection()
        connection.connection_made(_UpstreamTransport(connection))  # type: ignore[arg-type]
        return connection, False

    pool._acquire = acquire  # type: ignore[method-assign]
    protocol = native_pool._ClientConnection(pool)
    transport = _ClientTransport()
    protocol.connection_made(transport)  # type: ignore[arg-type]
    return _driver(protocol, transport, _request(scenario))


STEPS: dict[str, Callable[[str | None, str], Awaitable[Step]]] = {
    "dijk": dijk_step,
    "native": native_step,
}


async def _measure(step: Step, requests: int, profile: cProfile.Profile | None) -> float:
    """CPU microseconds per request over ``requests`` sequential requests."""
    if profile is not None:
        profile.enable()
    clock = _CLOCK[0]
    started = clock()
    for _ in range(requests):
        await step()
    elapsed = clock() - started
    if profile is not None:
        profile.disable()
    return elapsed / requests * 1e6


async def run(
    targets: list[str],
    rounds: int,
    requests: int,
    profile: bool,
    audit_dir: str | None,
    scenario: str = "get",
) -> int:
    steps = {name: await STEPS[name](audit_dir, scenario) for name in targets}
    for step in steps.values():
        for _ in range(WARMUP):
            await step()
    gc.collect()
    profiler = cProfile.Profile() if profile else None
    samples: dict[str, list[float]] = {name: [] for name in targets}
    for index in range(rounds):
        order = targets[index % len(targets) :] + targets[: index % len(targets)]
        for name in order:
            chosen = profiler if name == "dijk" else None
            samples[name].append(await _measure(steps[name], requests, chosen))
    for close in _CLOSERS:
        await close()
    _print_table(samples, rounds, requests)
    if profiler is not None:
        out = io.StringIO()
        pstats.Stats(profiler, stream=out).sort_stats("tottime").print_stats(30)
        print(out.getvalue())
    return 0


def _print_table(samples: dict[str, list[float]], rounds: int, requests: int) -> None:
    peer = statistics.median(samples["native"]) if "native" in samples else None
    print(f"CPU us/request, {rounds} rounds x {requests} requests (no sockets)")
    print(f"{'target':<8} {'median':>8} {'min-max':>15} {'x native':>9}")
    for name, values in samples.items():
        median = statistics.median(values)
        ratio = f"{median / peer:.2f}" if peer else "-"
        span = f"{min(values):.1f}-{max(values):.1f}"
        print(f"{name:<8} {median:>8.1f} {span:>15} {ratio:>9}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--targets", default="dijk,native", help="comma-separated: dijk,native")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--requests", type=int, default=20_000, help="requests per round")
    parser.add_argument("--profile", action="store_true", help="cProfile Dijk's rounds")
    parser.add_argument(
        "--audit", action="store_true", help="with the audit log on (default: off, as bench)"
    )
    parser.add_argument(
        "--scenario",
        default="get",
        choices=sorted(SCENARIOS),
        help="get: GET on a catch-all route (default); full-policy-*: API key + rate limit "
        "+ OpenAPI enforce + WAF PL1 (add --audit for the audit log)",
    )
    parser.add_argument(
        "--loop-only",
        action="store_true",
        help="count the event loop thread's CPU time only (without the audit database thread)",
    )
    arguments = parser.parse_args(argv)
    if arguments.loop_only:
        _CLOCK[0] = time.thread_time
    targets = [name.strip() for name in arguments.targets.split(",") if name.strip()]
    unknown = [name for name in targets if name not in STEPS]
    if unknown or not targets:
        parser.error(f"unknown targets {unknown}; choose from {sorted(STEPS)}")
    with tempfile.TemporaryDirectory(prefix="dijk-hotpath-") as directory:
        audit_dir = directory if arguments.audit else None
        return uvloop.run(
            run(
                targets,
                arguments.rounds,
                arguments.requests,
                arguments.profile,
                audit_dir,
                arguments.scenario,
            )
        )


if __name__ == "__main__":
    raise SystemExit(main())
