"""The audit log through a real `dijk serve` process: one record per request, including
refusals the HTTP server makes itself; SIGTERM loses nothing; SIGKILL under load in strict
mode loses no answered request (and in batched mode, how many are lost is reported);
reload keeps one continuous chain; the admin API serves the log; a second gateway on the
same chain refuses to start, at once, while read-only commands go on."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import os
import re
import signal
import socket
import sqlite3
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from contextlib import closing
from pathlib import Path
from typing import Any

import asyncpg  # type: ignore[import-untyped]
import pytest
import yaml

from dijk.audit.chain import verify_store
from dijk.audit.keys import AuditKeys
from dijk.audit.store import open_store
from tests.integration.test_audit_contract import postgres_url
from tests.support.gateway import GatewayProcess, base_config, parse_response, raw_request
from tests.support.upstream import RecordingUpstream

SECRET = "e2e-audit-secret-0123456789abcdefghijkl"
KEYS = AuditKeys.from_secret(SECRET.encode())
API_KEY = "dk_e2e_audit_" + "k" * 24
ADMIN_TOKEN = "admin-token-for-audit-e2e"
ENV = {"DIJK_AUDIT_KEY": SECRET, "E2E_AUDIT_KEY": API_KEY, "DIJK_ADMIN_TOKEN": ADMIN_TOKEN}


def audit_config(upstream_port: int, **audit: Any) -> dict[str, Any]:
    return base_config(
        upstream_port,
        # The test client stands for a proxy in front, whose X-Request-Id the gateway keeps.
        trusted_proxies=["127.0.0.1/32"],
        audit={"url": "sqlite:///./audit.db", **audit},
        limits={"max_header_bytes": 2048, "header_timeout_s": 1},
        consumers=[{"name": "alice", "api_keys": [{"env": "E2E_AUDIT_KEY"}]}],
        auth={"api_key": {"header": "X-API-Key"}},
        routes=[
            {
                "name": "accounts",
                "match": {"path_template": "/accounts/{id}"},
                "upstream": "echo",
                "auth": ["api_key"],
            },
            {"name": "public", "match": {"path_prefix": "/public"}, "upstream": "echo"},
        ],
    )


def rows(database: Path) -> list[dict[str, Any]]:
    with closing(sqlite3.connect(database)) as connection:
        connection.row_factory = sqlite3.Row
        return [dict(row) for row in connection.execute("SELECT * FROM dijk_audit ORDER BY seq")]


def verify(database: Path) -> bool:
    async def main() -> bool:
        async with open_store(f"sqlite:///{database}") as store:
            return (await verify_store(store, KEYS)).intact

    return asyncio.run(main())


def get(url: str, headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
    request = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return (
                response.status,
                {k.lower(): v for k, v in response.headers.items()},
                (response.read()),
            )
    except urllib.error.HTTPError as error:
        return error.code, {k.lower(): v for k, v in error.headers.items()}, error.read()


def test_every_request_allowed_denied_or_refused_has_exactly_one_record(
    start_gateway: Any, recording: RecordingUpstream
) -> None:
    gateway: GatewayProcess = start_gateway(audit_config(recording.port), env=ENV)
    base = gateway.url
    sent: dict[str, tuple[int, str | None]] = {}
    for request_id, path, headers, status, reason in [
        ("ok-1", "/accounts/NL91ABNA0417164300", {"X-API-Key": API_KEY}, 200, None),
        ("no-key", "/accounts/2", {}, 401, "auth.missing_credentials"),
        ("bad-key", "/accounts/3", {"X-API-Key": "dk_wrong_" + "x" * 24}, 401, None),
        ("public", "/public/jan@example.nl", {}, 200, None),
        ("unrouted", "/nowhere", {}, 404, "route.not_found"),
    ]:
        code, answer, _ = get(base + path, {**headers, "X-Request-Id": request_id})
        assert code == status
        assert answer["x-request-id"] == request_id
        sent[request_id] = (status, reason)
    refusals = {
        "smuggling": (
            b"POST /public HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\n"
            b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
            400,
        ),
        "headers-too-large": (
            b"GET /public HTTP/1.1\r\nHost: a\r\nX-Big: " + b"b" * 4096 + b"\r\n\r\n",
            431,
        ),
        "upgrade": (
            b"GET /public HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n\r\n",
            501,
        ),
        "slow-headers": (b"GET /public HTTP/1.1\r\nHost: a\r\n", 408),
    }
    for name, (data, status) in refusals.items():
        code, headers, _ = parse_response(raw_request(gateway.port, data, timeout=5))
        assert code == status, name
        sent[headers["x-request-id"]] = (status, None)
    assert gateway.stop() == 0  # SIGTERM: flush and close
    found = rows(gateway.directory / "audit.db")
    ids = [row["request_id"] for row in found]
    assert sorted(ids) == sorted(sent), "exactly one record per request"
    by_id = {row["request_id"]: row for row in found}
    for request_id, (status, reason) in sent.items():
        assert by_id[request_id]["status"] == status
        if reason:
            assert by_id[request_id]["reason"] == reason
    ok = by_id["ok-1"]
    assert (ok["route"], ok["path_template"], ok["decision"]) == (
        "accounts",
        "/accounts/{id}",
        "allow",
    )
    assert (ok["consumer"], ok["auth_method"]) == ("alice", "api_key")
    assert ok["credential_id"] == "key:" + hashlib.sha256(API_KEY.encode()).hexdigest()[:16]
    assert ok["client_ip"] == KEYS.pseudonym("127.0.0.1")
    assert by_id["public"]["path_template"] == "/public/*"
    assert by_id["no-key"]["decision"] == "deny"
    assert verify(gateway.directory / "audit.db")
    written = b"".join(path.read_bytes() for path in gateway.directory.rglob("audit.db*"))
    for raw in (API_KEY.encode(), b"NL91ABNA0417164300", b"jan@example.nl", b"127.0.0.1"):
        assert raw not in written


async def _load(port: int, answered: list[str], stop: asyncio.Event, workers: int = 24) -> None:
    """Keep-alive clients sending GETs until ``stop``; an id is *answered* once its whole
    response (head and Content-Length body) has arrived."""

    async def worker(number: int) -> None:
        sequence = 0
        while not stop.is_set():
            try:
                reader, writer = await asyncio.open_connection("127.0.0.1", port)
            except OSError:
                return
            try:
                while not stop.is_set():
                    sequence += 1
                    request_id = f"w{number}-{sequence}"
                    writer.write(
                        f"GET /public/{sequence} HTTP/1.1\r\nHost: gw\r\n"
                        f"X-Request-Id: {request_id}\r\n\r\n".encode()
                    )
                    head = await reader.readuntil(b"\r\n\r\n")
                    length = 0
                    for line in head.split(b"\r\n"):
                        if line.lower().startswith(b"content-length:"):
                            length = int(line.split(b":", 1)[1])
                    await reader.readexactly(length)
                    answered.append(request_id)
            except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
                return
            finally:
                writer.close()

    await asyncio.gather(*(worker(number) for number in range(workers)))


def _kill_under_load(gateway: GatewayProcess, seconds: float) -> list[str]:
    answered: list[str] = []

    async def main() -> None:
        stop = asyncio.Event()
        load = asyncio.create_task(_load(gateway.port, answered, stop))
        await asyncio.sleep(seconds)
        gateway.signal(signal.SIGKILL)
        await asyncio.sleep(0.3)
        stop.set()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(load, 5)

    asyncio.run(main())
    assert gateway.process is not None
    gateway.process.wait(5)
    return answered


def _recorded(directory: Path) -> set[str]:
    recorded = {row["request_id"] for row in rows(directory / "audit.db")}
    spool = directory / "audit-spool"  # beside audit.db (the data dir of a SQLite log)
    for path in spool.glob("*.jsonl") if spool.exists() else []:
        for line in path.read_text().splitlines():
            with contextlib.suppress(ValueError, KeyError):
                recorded.add(json.loads(line)["record"]["request_id"])
    return recorded


@pytest.mark.slow
def test_strict_mode_sigkill_under_load_every_answered_request_has_its_record(
    start_gateway: Any, recording: RecordingUpstream
) -> None:
    gateway: GatewayProcess = start_gateway(
        audit_config(recording.port, durability="strict"), env=ENV
    )
    answered = _kill_under_load(gateway, 2.0)
    assert len(answered) > 200, "the load did not get going"
    recorded = _recorded(gateway.directory)
    missing = [request_id for request_id in answered if request_id not in recorded]
    print(f"\nstrict: {len(answered)} answered, {len(recorded)} recorded, {len(missing)} missing")
    assert missing == []
    assert verify(gateway.directory / "audit.db")  # a kill mid-commit leaves no broken tail


@pytest.mark.slow
def test_batched_mode_sigkill_reports_how_many_answered_requests_lost_their_record(
    start_gateway: Any, recording: RecordingUpstream
) -> None:
    gateway: GatewayProcess = start_gateway(audit_config(recording.port), env=ENV)
    answered = _kill_under_load(gateway, 2.0)
    assert len(answered) > 200
    recorded = _recorded(gateway.directory)
    lost = [request_id for request_id in answered if request_id not in recorded]
    # The documented bound: what was queued plus the batch being written (flush <= 100 ms).
    print(
        f"\nbatched: {len(answered)} answered, {len(lost)} lost to SIGKILL"
        f" ({100 * len(lost) / len(answered):.2f} %)"
    )
    assert len(lost) <= 20_000 + 5_000
    assert verify(gateway.directory / "audit.db")


def test_sigterm_flushes_everything_even_with_a_long_flush_interval(
    start_gateway: Any, recording: RecordingUpstream
) -> None:
    gateway: GatewayProcess = start_gateway(
        audit_config(recording.port, flush_interval_ms=1000, max_batch=100_000), env=ENV
    )
    answered: list[str] = []

    async def burst() -> None:
        stop = asyncio.Event()
        load = asyncio.create_task(_load(gateway.port, answered, stop, workers=8))
        await asyncio.sleep(0.5)
        stop.set()
        await load

    asyncio.run(burst())
    assert gateway.stop() == 0
    assert answered
    assert set(answered) <= {row["request_id"] for row in rows(gateway.directory / "audit.db")}
    assert verify(gateway.directory / "audit.db")


def test_reload_keeps_one_continuous_chain_and_a_new_chain_name_starts_another(
    start_gateway: Any, recording: RecordingUpstream
) -> None:
    gateway: GatewayProcess = start_gateway(audit_config(recording.port), env=ENV)
    for number in range(5):
        get(f"{gateway.url}/public/{number}")
    ports = {"listen": gateway.config["listen"], "admin": gateway.config["admin"]}
    gateway.write_config({**audit_config(recording.port, durability="strict"), **ports})
    gateway.signal(signal.SIGHUP)
    _wait_for_generation(gateway, 2)
    for number in range(5):
        get(f"{gateway.url}/public/after-{number}")
    second = audit_config(recording.port, durability="strict", chain="second")
    gateway.write_config({**second, **ports})
    gateway.signal(signal.SIGHUP)
    _wait_for_generation(gateway, 3)
    get(f"{gateway.url}/public/other-chain")
    assert gateway.stop() == 0
    found = rows(gateway.directory / "audit.db")
    default = [row["seq"] for row in found if row["chain"] == "default"]
    assert default == list(range(1, len(default) + 1))
    assert len(default) >= 10
    assert [row["seq"] for row in found if row["chain"] == "second"] == [1]
    assert verify(gateway.directory / "audit.db")


def _wait_for_generation(gateway: GatewayProcess, generation: int) -> None:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        with urllib.request.urlopen(
            f"http://127.0.0.1:{gateway.admin_port}/metrics", timeout=2
        ) as response:
            if f"dijk_config_generation {generation}.0" in response.read().decode():
                return
        time.sleep(0.05)
    raise AssertionError(f"no reload to generation {generation}:\n{gateway.logs()}")


def test_admin_api_serves_the_log_with_filters_and_pages(
    start_gateway: Any, recording: RecordingUpstream
) -> None:
    gateway: GatewayProcess = start_gateway(audit_config(recording.port), env=ENV)
    for number in range(6):
        get(f"{gateway.url}/accounts/{number}", {"X-Request-Id": f"denied-{number}"})
    get(f"{gateway.url}/public/x", {"X-Request-Id": "allowed"})
    admin = f"http://127.0.0.1:{gateway.admin_port}/admin/api/v1/audit"
    auth = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    time.sleep(0.3)  # batched: committed within 100 ms
    status, _, body = get(admin + "?status=4xx&reason=auth.*&limit=4", auth)
    assert status == 200, body
    page = json.loads(body)
    assert [row["request_id"] for row in page["records"]] == [f"denied-{n}" for n in (5, 4, 3, 2)]
    assert page["next_cursor"]
    status, _, body = get(admin + f"?status=4xx&limit=4&cursor={page['next_cursor']}", auth)
    assert [row["request_id"] for row in json.loads(body)["records"]] == ["denied-1", "denied-0"]
    status, _, body = get(admin + "?decision=allow&order=oldest", auth)
    assert [row["request_id"] for row in json.loads(body)["records"]] == ["allowed"]
    status, _, body = get(admin + "?stauts=404", auth)
    assert status == 400
    assert "unknown parameter 'stauts'" in json.loads(body)["detail"]
    # Last: refused admin calls are on record too and would come first in these pages.
    assert get(admin)[0] == 401
    assert get(admin, {"Authorization": "Bearer wrong"})[0] == 401


def test_a_sink_that_is_down_never_slows_requests(
    start_gateway: Any, recording: RecordingUpstream
) -> None:
    with socket.socket() as blackhole:  # accepts connections, never reads
        blackhole.bind(("127.0.0.1", 0))
        blackhole.listen(1)
        port = blackhole.getsockname()[1]
        sinks = [
            {"type": "syslog", "url": f"tcp://127.0.0.1:{port}", "max_queue": 100},
            {"type": "otlp", "url": "http://127.0.0.1:9/v1/logs", "timeout_s": 1},
        ]
        gateway: GatewayProcess = start_gateway(audit_config(recording.port, sinks=sinks), env=ENV)
        started = time.monotonic()
        for number in range(200):
            assert get(f"{gateway.url}/public/{number}")[0] == 200
        elapsed = time.monotonic() - started
        assert gateway.stop() == 0
    assert elapsed < 20
    assert len(rows(gateway.directory / "audit.db")) == 200
    assert "record copies dropped" in gateway.logs()


def test_config_validate_names_a_sink_url_that_does_not_fit_its_type(
    recording: RecordingUpstream, tmp_path: Path
) -> None:
    text = yaml.safe_dump(audit_config(recording.port, sinks=[{"type": "otlp", "url": "x"}]))
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    from typer.testing import CliRunner

    from dijk.cli.main import app

    result = CliRunner().invoke(app, ["config", "validate", str(path)])
    assert result.exit_code == 1
    assert "audit.sinks" in result.stderr
    assert "http" in result.stderr


# -- one writer per chain -----------------------------------------------------------------


def _refused(gateway: GatewayProcess) -> tuple[float, str]:
    """Start ``gateway`` expecting it to refuse; returns the seconds it took and its output."""
    started = time.monotonic()
    with pytest.raises(RuntimeError, match="exited early"):
        gateway.start()
    elapsed = time.monotonic() - started
    assert gateway.process is not None
    assert gateway.process.wait(5) == 1
    output = gateway.logs()
    assert "Traceback" not in output
    return elapsed, output


def _dijk(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "dijk", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, **ENV},
        check=False,
    )


def test_a_second_gateway_on_the_same_sqlite_chain_refuses_to_start_until_the_first_is_gone(
    recording: RecordingUpstream, tmp_path: Path
) -> None:
    database = tmp_path / "shared" / "audit.db"  # one file, two gateways, the same chain
    url = f"sqlite:///{database}"
    started: list[GatewayProcess] = []

    def gateway(name: str) -> GatewayProcess:
        directory = tmp_path / name
        directory.mkdir()
        started.append(GatewayProcess(audit_config(recording.port, url=url), directory, ENV))
        return started[-1]

    try:
        first = gateway("first").start()
        assert get(f"{first.url}/public/before")[0] == 200
        elapsed, output = _refused(gateway("second"))
        print(f"\nsecond gateway refused after {elapsed:.2f} s (process start included)")
        assert elapsed < 5.0  # the start of a Python process; the refusal itself is instant
        assert f"audit chain 'default' in {database} is being written by another process" in (
            output
        )
        assert first.process is not None
        assert re.search(rf"\bpid {first.process.pid}\b", output)
        assert f"{database}.dijk_audit.default.lock" in output
        assert "audit.chain" in output
        assert "audit.url" in output
        assert "PostgreSQL" in output
        # The first goes on, and the read-only commands work while it holds the chain.
        assert get(f"{first.url}/public/during")[0] == 200
        time.sleep(0.3)  # batched: committed within 100 ms
        verified = _dijk("audit", "verify", "--db", url)
        assert verified.returncode == 0, verified.stderr
        assert "chain 'default': intact: 2 records" in verified.stdout
        exported = _dijk("audit", "export", "--db", url, "--format", "ecs")
        assert exported.returncode == 0, exported.stderr
        assert len(exported.stdout.splitlines()) == 2
        # kill -9 leaves no stale lock: the next gateway starts and continues the chain.
        first.signal(signal.SIGKILL)
        first.process.wait(5)
        third = gateway("third").start()
        assert get(f"{third.url}/public/after")[0] == 200
        assert third.stop() == 0
    finally:
        for process in started:
            if process.process is not None:
                process.stop()
    # before and during (committed before the kill), after (flushed by SIGTERM): one chain.
    assert [row["seq"] for row in rows(database)] == [1, 2, 3]
    assert verify(database)


@pytest.mark.postgres
def test_a_second_gateway_on_the_same_postgresql_chain_refuses_to_start_its_own_chain_works(
    recording: RecordingUpstream, tmp_path: Path
) -> None:
    base = asyncio.run(postgres_url())
    table = f"audit_{uuid.uuid4().hex[:12]}"
    url = f"{base}?table={table}"
    started: list[GatewayProcess] = []

    def gateway(name: str, **audit: Any) -> GatewayProcess:
        directory = tmp_path / name
        directory.mkdir()
        config = audit_config(recording.port, url=url, **audit)
        started.append(GatewayProcess(config, directory, ENV))
        return started[-1]

    try:
        first = gateway("first").start()
        elapsed, output = _refused(gateway("second"))
        assert elapsed < 5.0
        assert "audit chain 'default' in table " in output
        assert f".{table} of " in output
        assert first.process is not None
        assert re.search(rf"dijk audit writer \S+ pid {first.process.pid}\b", output)
        assert "its own audit.chain" in output
        third = gateway("third", chain="gateway-3").start()  # what the message asks for
        for gateway_process, name in ((first, "one"), (third, "three")):
            assert get(f"{gateway_process.url}/public/{name}")[0] == 200
        assert first.stop() == 0
        assert third.stop() == 0

        async def report() -> list[tuple[str, int, bool]]:
            async with open_store(url) as store:
                checked = await verify_store(store, KEYS)
            return [(chain.chain, chain.records, chain.intact) for chain in checked.chains]

        assert asyncio.run(report()) == [("default", 1, True), ("gateway-3", 1, True)]
    finally:
        for process in started:
            if process.process is not None:
                process.stop()

        async def drop() -> None:
            connection = await asyncpg.connect(base)
            try:
                await connection.execute(f"DROP TABLE IF EXISTS {table}, {table}_checkpoint")
            finally:
                await connection.close()

        asyncio.run(drop())
