"""Chaos: faults under steady load, and what clients saw against what the policy promised.

    .venv/bin/python -m bench.chaos                  # every case, 10 s outages
    .venv/bin/python -m bench.chaos --quick          # short outages (what make test runs)
    .venv/bin/python -m bench.chaos --case redis --case sigkill
    options: --outage S  --rate N (requests/s per client, 4 clients)  --json PATH

Each case starts its own ``dijk serve`` (SQLite audit log, ``durability: strict``), its own
upstream and, where needed, its own ``redis-server`` or a TCP proxy in front of the shared
PostgreSQL: the shared services are never stopped. Clients send requests with their own
``X-Request-Id`` and note every outcome (status and reason, ``cut`` for a response that
ended early, ``error`` for a refused connection). A case passes when:

* what clients saw is what the policy promised during the fault (503 with the documented
  reason for a fail-closed store, 502/504 problem documents for upstream faults, nothing
  refused for a spooled audit outage or a broken reload), nothing hung (slowest answer
  under the bound), and the gateway recovered when the dependency came back;
* the audit log is complete: ``dijk audit verify`` passes, and every answered request has
  exactly one record (the record count equals the responses sent).

Cases: ``redis`` (stop a private redis-server; ``on_storage_error: deny``), ``postgres``
(cut a TCP proxy in front of PostgreSQL; the audit log spools), ``upstream`` (hang, reset,
garbage), ``sigkill`` (SIGKILL in strict mode, restart, clean stop), ``sighup`` (100
SIGHUPs alternating a valid and a broken configuration).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import http.client
import json
import os
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

SECRET = "chaos-audit-secret-0123456789abcdefghij"
ENV = {"DIJK_AUDIT_KEY": SECRET}
POSTGRES = os.environ.get("DIJK_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# --------------------------------------------------------------------------- upstream


class Upstream:
    """A loopback HTTP/1.1 upstream whose behaviour can be switched while it runs."""

    def __init__(self) -> None:
        self.mode = "ok"  # ok | hang | reset | garbage
        self.port = free_port()
        self._server = socket.socket()
        self._server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._server.bind(("127.0.0.1", self.port))
        self._server.listen(256)
        self._stopped = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self._stopped:
            try:
                client, _ = self._server.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    def _serve(self, client: socket.socket) -> None:
        with client:
            buffer = b""
            while True:
                try:
                    data = client.recv(65536)
                except OSError:
                    return
                if not data:
                    return
                buffer += data
                while b"\r\n\r\n" in buffer:
                    _, buffer = buffer.split(b"\r\n\r\n", 1)  # requests carry no body here
                    mode = self.mode
                    if mode == "hang":
                        time.sleep(30)
                        return
                    if mode == "reset":
                        client.setsockopt(
                            socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00"
                        )
                        return
                    if mode == "garbage":
                        client.sendall(b"\x00\xffNOT HTTP AT ALL\r\n\r\n")
                        return
                    body = b'{"ok":true}'
                    client.sendall(
                        b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n"
                        b"content-length: %d\r\n\r\n%s" % (len(body), body)
                    )

    def close(self) -> None:
        self._stopped = True
        self._server.close()


# --------------------------------------------------------------------------- gateway


class Gateway:
    def __init__(self, directory: Path, config: dict[str, Any]) -> None:
        self.directory = directory
        self.config = config
        self.path = directory / "dijk.yaml"
        self.process: subprocess.Popen[bytes] | None = None
        self.port = int(config["listen"]["port"])
        self.admin_port = int(config["admin"]["port"])

    def write(self, text: str | None = None) -> None:
        self.path.write_text(text if text is not None else yaml.safe_dump(self.config))

    def start(self) -> None:
        self.write()
        log = (self.directory / "gateway.log").open("ab")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "dijk", "serve", "-c", str(self.path)],
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=self.directory,
            env={**os.environ, **ENV},
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"gateway exited: {self.logs()[-2000:]}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("gateway did not start")

    def readyz(self) -> int:
        try:
            return call(self.admin_port, "/readyz", "")[0]
        except Exception:
            return 0

    def signal(self, signum: int) -> None:
        assert self.process is not None
        self.process.send_signal(signum)

    def stop(self) -> int:
        process, self.process = self.process, None
        if process is None:
            return 0
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
        try:
            return process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            return process.wait()

    def kill(self) -> None:
        assert self.process is not None
        self.process.kill()
        self.process.wait()
        self.process = None

    def logs(self) -> str:
        return (self.directory / "gateway.log").read_text(errors="replace")

    @property
    def database(self) -> Path:
        return self.directory / "audit.db"


def gateway_config(upstream: Upstream, **extra: Any) -> dict[str, Any]:
    config: dict[str, Any] = {
        "version": 1,
        "listen": {"address": "127.0.0.1", "port": free_port()},
        "admin": {"address": "127.0.0.1", "port": free_port()},
        "upstreams": {"app": {"url": f"http://127.0.0.1:{upstream.port}", "read_timeout_s": 1}},
        "routes": [{"name": "app", "match": {"path_prefix": "/"}, "upstream": "app"}],
        "audit": {"url": "sqlite:///./audit.db", "durability": "strict"},
        # The load clients stand in for a proxy in front: their X-Request-Id is kept (from
        # any other peer the gateway makes its own), so records match the answers.
        "trusted_proxies": ["127.0.0.1/32"],
    }
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(config.get(key), dict):
            config[key] = {**config[key], **value}
        else:
            config[key] = value
    return config


# --------------------------------------------------------------------------- load


def call(port: int, path: str, request_id: str, timeout: float = 10) -> tuple[int, str]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        headers = {"X-Request-Id": request_id} if request_id else {}
        connection.request("GET", path, headers=headers)
        response = connection.getresponse()
        body = response.read()
        reason = ""
        if response.getheader("content-type", "").startswith("application/problem+json"):
            reason = str(json.loads(body).get("reason", ""))
        return response.status, reason
    finally:
        connection.close()


@dataclass
class Outcome:
    request_id: str
    sent_at: float
    seconds: float
    status: int  # 0: cut or refused
    reason: str
    phase: str


@dataclass
class Load:
    """Clients sending requests at a steady pace; each outcome is noted with the phase."""

    port: int
    clients: int = 4
    rate: float = 25.0  # per client
    path: str = "/r"
    phase: str = "before"
    outcomes: list[Outcome] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _threads: list[threading.Thread] = field(default_factory=list)

    def start(self) -> Load:
        for index in range(self.clients):
            thread = threading.Thread(target=self._client, args=(index,), daemon=True)
            thread.start()
            self._threads.append(thread)
        return self

    def _client(self, index: int) -> None:
        number = 0
        while not self._stop.is_set():
            number += 1
            request_id = f"chaos-{index}-{number}-{uuid.uuid4().hex[:6]}"
            started = time.monotonic()
            phase = self.phase
            try:
                status, reason = call(self.port, self.path, request_id)
            except (OSError, http.client.HTTPException) as exc:
                status, reason = 0, type(exc).__name__
            elapsed = time.monotonic() - started
            self.outcomes.append(Outcome(request_id, started, elapsed, status, reason, phase))
            time.sleep(max(0.0, 1 / self.rate - elapsed))

    def stop(self) -> list[Outcome]:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=40)
        return self.outcomes


# --------------------------------------------------------------------------- checks


@dataclass
class CaseResult:
    name: str
    ok: bool = True
    problems: list[str] = field(default_factory=list)
    figures: dict[str, Any] = field(default_factory=dict)

    def check(self, condition: bool, problem: str) -> None:
        if not condition:
            self.ok = False
            self.problems.append(problem)


def audit_rows(database: Path) -> dict[str, list[tuple[int, str, str | None]]]:
    rows: dict[str, list[tuple[int, str, str | None]]] = {}
    with contextlib.closing(sqlite3.connect(database)) as connection:
        for request_id, status, decision, reason in connection.execute(
            "SELECT request_id, status, decision, reason FROM dijk_audit"
        ):
            rows.setdefault(request_id, []).append((status, decision, reason))
    return rows


def verify(url: str, cwd: Path) -> tuple[bool, str]:
    result = subprocess.run(
        [sys.executable, "-m", "dijk", "audit", "verify", "--db", url],
        cwd=cwd,
        capture_output=True,
        text=True,
        env={**os.environ, **ENV},
        check=False,
    )
    return result.returncode == 0, (result.stdout + result.stderr).strip()


def check_log_complete(
    result: CaseResult, outcomes: list[Outcome], rows: dict[str, list[Any]], strict: bool = True
) -> None:
    answered = [item for item in outcomes if item.status]
    missing = [item.request_id for item in answered if item.request_id not in rows]
    doubled = [request_id for request_id, found in rows.items() if len(found) > 1]
    result.figures["responses"] = len(answered)
    result.figures["records"] = sum(
        len(found) for key, found in rows.items() if key.startswith("chaos-")
    )
    result.check(not missing, f"{len(missing)} answered requests have no record: {missing[:3]}")
    result.check(not doubled, f"{len(doubled)} requests have more than one record")
    if strict:
        extra = [
            key
            for key in rows
            if key.startswith("chaos-") and key not in {item.request_id for item in answered}
        ]
        # A record without an answer is one whose response was cut: it must say so.
        wrong = [key for key in extra if rows[key][0][1] not in ("abort", "deny")]
        result.check(not wrong, f"unanswered requests recorded as served: {wrong[:3]}")


def check_audit(
    result: CaseResult, outcomes: list[Outcome], work: Path, url: str = "sqlite:///./audit.db"
) -> None:
    """``dijk audit verify`` passes and every answer has exactly one record."""
    ok, text = verify(url, work)
    result.check(ok, f"audit verify: {text}")
    check_log_complete(result, outcomes, audit_rows(work / "audit.db"))


def statuses(outcomes: list[Outcome], phase: str) -> Counter[tuple[int, str]]:
    return Counter((item.status, item.reason) for item in outcomes if item.phase == phase)


def named(seen: Counter[tuple[int, str]]) -> dict[str, int]:
    """``{"503 ratelimit.storage_unavailable": 12, "0 RemoteDisconnected": 1}``."""
    return {f"{status} {reason}".strip(): count for (status, reason), count in seen.items()}


def wait_for(predicate: Callable[[], bool], timeout: float) -> float | None:
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if predicate():
            return time.monotonic() - started
        time.sleep(0.05)
    return None


# --------------------------------------------------------------------------- cases


def case_redis(work: Path, outage: float, rate: float) -> CaseResult:
    result = CaseResult("redis")
    server = shutil.which("redis-server")
    if server is None:
        result.check(False, "redis-server is not installed")
        return result
    redis_port = free_port()
    argv = [server, "--port", str(redis_port), "--bind", "127.0.0.1", "--save", "",
            "--appendonly", "no", "--dir", str(work)]  # fmt: skip
    redis = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    upstream = Upstream()
    config = gateway_config(
        upstream,
        storage={"url": f"redis://127.0.0.1:{redis_port}/0", "timeout_s": 0.25},
        ratelimit={"max_connections": 64},
    )
    config["routes"][0]["rate_limit"] = [{"key": "ip", "limit": 1_000_000, "per_s": 60}]
    gateway = Gateway(work, config)
    try:
        time.sleep(0.3)
        gateway.start()
        load = Load(gateway.port, rate=rate).start()
        time.sleep(2)
        load.phase = "outage"
        redis.kill()
        redis.wait()
        time.sleep(0.5)
        result.figures["ready_during_outage"] = gateway.readyz()
        time.sleep(max(0.0, outage - 0.5))
        load.phase = "recovering"
        redis = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        back = wait_for(lambda: gateway.readyz() == 200, 10)
        time.sleep(1.0)
        load.phase = "after"
        time.sleep(3)
        outcomes = load.stop()
        gateway.stop()
        during = statuses(outcomes, "outage")
        after = statuses(outcomes, "after")
        result.figures.update(
            during=named(during), after=named(after), ready_again_s=back,
            slowest_s=round(max(item.seconds for item in outcomes), 3),
        )  # fmt: skip
        result.check(
            set(during) <= {(503, "ratelimit.storage_unavailable"), (200, "")},
            f"during the outage clients saw {dict(during)}",
        )
        result.check(during[(503, "ratelimit.storage_unavailable")] > 0, "no request was refused")
        result.check(result.figures["ready_during_outage"] == 503, "/readyz said ready")
        result.check(back is not None, "never ready again")
        result.check(set(after) == {(200, "")}, f"after recovery clients saw {dict(after)}")
        result.check(result.figures["slowest_s"] < 2.0, "a request hung")
        check_audit(result, outcomes, work)
    finally:
        gateway.stop()
        redis.kill()
        upstream.close()
    return result


class _Proxy:
    """A TCP proxy in front of PostgreSQL on its own event loop thread (cut and restore)."""

    def __init__(self, host: str, port: int) -> None:
        self.target = (host, port)
        self.port = free_port()
        self.loop = asyncio.new_event_loop()
        self.server: asyncio.Server | None = None
        self.writers: list[asyncio.StreamWriter] = []
        threading.Thread(target=self.loop.run_forever, daemon=True).start()

    def _run(self, coroutine: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(10)

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.target)
        except OSError:
            writer.transport.abort()
            return
        self.writers += [writer, up_writer]

        async def pipe(source: asyncio.StreamReader, target: asyncio.StreamWriter) -> None:
            with contextlib.suppress(OSError):
                while data := await source.read(65536):
                    target.write(data)
                    await target.drain()
            target.transport.abort()

        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))

    def start(self) -> None:
        async def start() -> None:
            self.server = await asyncio.start_server(self._handle, "127.0.0.1", self.port)

        self._run(start())

    def cut(self) -> None:
        async def cut() -> None:
            if self.server is not None:
                self.server.close()
                self.server = None
            for writer in self.writers:
                writer.transport.abort()
            self.writers.clear()

        self._run(cut())

    def close(self) -> None:
        self.cut()
        self.loop.call_soon_threadsafe(self.loop.stop)


def case_postgres(work: Path, outage: float, rate: float) -> CaseResult:
    result = CaseResult("postgres")
    from urllib.parse import urlsplit

    base = urlsplit(POSTGRES)
    proxy = _Proxy(base.hostname or "127.0.0.1", base.port or 5432)
    proxy.start()
    table = f"chaos_{uuid.uuid4().hex[:10]}"
    url = f"postgresql://{base.username}@127.0.0.1:{proxy.port}{base.path}?table={table}"
    direct = f"{POSTGRES}?table={table}"
    upstream = Upstream()
    gateway = Gateway(work, gateway_config(upstream, audit={"url": url, "durability": "strict"}))
    try:
        gateway.start()
        load = Load(gateway.port, rate=rate).start()
        time.sleep(2)
        load.phase = "outage"
        proxy.cut()
        time.sleep(outage)
        load.phase = "after"
        proxy.start()
        time.sleep(4)
        outcomes = load.stop()
        gateway.stop()
        during, after = statuses(outcomes, "outage"), statuses(outcomes, "after")
        result.figures.update(during=named(during), after=named(after))
        # on_sink_error: spool (the default): nothing refused, nothing lost.
        answered = {(status, reason) for status, reason in during if status}
        result.check(answered <= {(200, "")}, f"during the outage clients saw {dict(during)}")
        result.check(set(after) == {(200, "")}, f"after recovery clients saw {dict(after)}")
        result.check(
            max(item.seconds for item in outcomes) < 12, "a request waited past the sink timeout"
        )
        ok, text = verify(direct, work)
        result.check(ok, f"audit verify: {text}")
        rows = asyncio.run(_pg_rows(table))
        check_log_complete(result, outcomes, rows)
    finally:
        gateway.stop()
        proxy.close()
        upstream.close()
        with contextlib.suppress(Exception):
            asyncio.run(_pg_drop(table))
    return result


async def _pg_rows(table: str) -> dict[str, list[tuple[int, str, str | None]]]:
    import asyncpg  # type: ignore[import-untyped]

    connection = await asyncpg.connect(POSTGRES)
    try:
        found = await connection.fetch(f"SELECT request_id, status, decision, reason FROM {table}")
    finally:
        await connection.close()
    rows: dict[str, list[tuple[int, str, str | None]]] = {}
    for row in found:
        rows.setdefault(row["request_id"], []).append(
            (row["status"], row["decision"], row["reason"])
        )
    return rows


async def _pg_drop(table: str) -> None:
    import asyncpg

    connection = await asyncpg.connect(POSTGRES)
    try:
        await connection.execute(f"DROP TABLE IF EXISTS {table}, {table}_checkpoint")
    finally:
        await connection.close()


def case_upstream(work: Path, outage: float, rate: float) -> CaseResult:
    result = CaseResult("upstream")
    upstream = Upstream()
    gateway = Gateway(work, gateway_config(upstream))
    promised = {"hang": (504, "upstream.timeout"), "reset": (502, None), "garbage": (502, None)}
    try:
        gateway.start()
        load = Load(gateway.port, rate=rate).start()
        time.sleep(1)
        for mode in promised:
            load.phase = mode
            upstream.mode = mode
            time.sleep(max(2.0, outage / 3))
            upstream.mode = "ok"
            load.phase = f"after-{mode}"
            time.sleep(1.5)
        outcomes = load.stop()
        gateway.stop()
        for mode, (status, reason) in promised.items():
            seen = statuses(outcomes, mode)
            result.figures[mode] = named(seen)
            wrong = [
                key
                for key in seen
                if key != (200, "")
                and not (key[0] == status and (reason is None or key[1] == reason))
            ]
            result.check(seen[(status, reason)] > 0 or any(k[0] == status for k in seen),
                         f"{mode}: no {status} seen: {dict(seen)}")  # fmt: skip
            result.check(not wrong, f"{mode}: clients saw {dict(seen)}")
            after = statuses(outcomes, f"after-{mode}")
            # The first request after the switch may still meet the fault.
            result.check(after[(200, "")] >= sum(after.values()) - 4, f"after {mode}: {after}")
        slowest = max(item.seconds for item in outcomes)
        result.figures["slowest_s"] = round(slowest, 3)
        result.check(slowest < 3.0, "a request hung past the read timeout")
        check_audit(result, outcomes, work)
    finally:
        gateway.stop()
        upstream.close()
    return result


def case_sigkill(work: Path, outage: float, rate: float) -> CaseResult:
    result = CaseResult("sigkill")
    upstream = Upstream()
    gateway = Gateway(work, gateway_config(upstream))
    try:
        gateway.start()
        load = Load(gateway.port, rate=rate).start()
        time.sleep(max(2.0, outage / 2))
        gateway.kill()
        outcomes = load.stop()
        rows = audit_rows(gateway.database)
        answered = [item for item in outcomes if item.status]
        missing = [item.request_id for item in answered if item.request_id not in rows]
        result.figures.update(answered=len(answered), lost=len(missing))
        result.check(not missing, f"strict mode lost {len(missing)} answered requests")
        gateway.start()  # restart, no traffic, clean stop: the tail must be anchored
        gateway.stop()
        ok, text = verify("sqlite:///./audit.db", work)
        result.check(ok, f"audit verify: {text}")
        with contextlib.closing(sqlite3.connect(gateway.database)) as connection:
            last = connection.execute("SELECT max(seq) FROM dijk_audit").fetchone()[0]
            anchored = connection.execute("SELECT max(seq) FROM dijk_audit_checkpoint").fetchone()[
                0
            ]
        result.figures.update(last_seq=last, last_checkpoint_seq=anchored)
        result.check(anchored == last, "the tail left by the crash is not anchored")
        # Commit comes before release: a request whose record was committed when the
        # process died may never have been answered (at most one per request in flight).
        rows = audit_rows(gateway.database)
        check_log_complete(result, outcomes, rows, strict=False)
        unanswered = len(rows) - len({item.request_id for item in answered} & set(rows))
        result.figures["recorded_not_answered"] = unanswered
        result.check(unanswered <= load.clients, f"{unanswered} records without an answer")
    finally:
        with contextlib.suppress(Exception):
            gateway.stop()
        upstream.close()
    return result


def case_sighup(work: Path, outage: float, rate: float, reloads: int = 100) -> CaseResult:
    result = CaseResult("sighup")
    upstream = Upstream()
    gateway = Gateway(work, gateway_config(upstream))
    valid = yaml.safe_dump(gateway.config)
    broken = valid.replace("path_prefix: /", "path_prefix: [not a path")
    try:
        gateway.start()
        load = Load(gateway.port, rate=rate).start()
        time.sleep(1)
        load.phase = "reloading"
        for number in range(reloads):
            gateway.write(valid if number % 2 == 0 else broken)
            gateway.signal(signal.SIGHUP)
            time.sleep(0.05)
        gateway.write(valid)
        time.sleep(1)
        load.phase = "after"
        time.sleep(1)
        outcomes = load.stop()
        alive = gateway.process is not None and gateway.process.poll() is None
        logs = gateway.logs()
        gateway.stop()
        seen = statuses(outcomes, "reloading")
        result.figures.update(
            reloads=reloads, during=named(seen),
            reloaded=logs.count('"reloaded"'), failed=logs.count('"reload_failed"'),
        )  # fmt: skip
        result.check(alive, "the gateway died")
        result.check(set(seen) == {(200, "")}, f"requests failed during reloads: {dict(seen)}")
        result.check(result.figures["failed"] > 0, "no broken configuration was refused")
        check_audit(result, outcomes, work)
    finally:
        gateway.stop()
        upstream.close()
    return result


CASES: dict[str, Callable[[Path, float, float], CaseResult]] = {
    "redis": case_redis,
    "postgres": case_postgres,
    "upstream": case_upstream,
    "sigkill": case_sigkill,
    "sighup": case_sighup,
}


@contextlib.contextmanager
def workdir(name: str) -> Iterator[Path]:
    directory = Path(tempfile.mkdtemp(prefix=f"dijk-chaos-{name}-"))
    try:
        yield directory
    finally:
        shutil.rmtree(directory, ignore_errors=True)


def run(names: list[str], outage: float, rate: float) -> list[CaseResult]:
    results = []
    for name in names:
        started = time.monotonic()
        with workdir(name) as work:
            try:
                result = CASES[name](work, outage, rate)
            except Exception as exc:  # a harness failure is a failed case, not a crash
                result = CaseResult(name, False, [f"{type(exc).__name__}: {exc}"])
        result.figures["seconds"] = round(time.monotonic() - started, 1)
        status = "ok" if result.ok else "FAILED"
        print(f"{name:<9} {status:<6} {json.dumps(result.figures, default=str)}", flush=True)
        for problem in result.problems:
            print(f"          - {problem}", flush=True)
        results.append(result)
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--case", action="append", choices=sorted(CASES))
    parser.add_argument("--quick", action="store_true", help="3 s outages")
    parser.add_argument("--outage", type=float, default=10.0)
    parser.add_argument("--rate", type=float, default=25.0, help="requests/s per client")
    parser.add_argument("--json", type=Path)
    options = parser.parse_args()
    outage = 3.0 if options.quick else options.outage
    results = run(options.case or list(CASES), outage, options.rate)
    if options.json:
        options.json.write_text(
            json.dumps([r.__dict__ for r in results], indent=2, default=str) + "\n"
        )
    return 0 if all(result.ok for result in results) else 1


if __name__ == "__main__":
    raise SystemExit(main())
