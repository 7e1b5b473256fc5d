"""``workers: 2`` against a real ``dijk serve``: two processes share the listeners, one
``/metrics`` adds both up, SIGHUP reloads both, a killed worker is restarted (its counts
kept), SIGTERM drains both, and each worker writes its own intact audit chain."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.gateway import GatewayProcess, base_config, wait_for
from tests.support.gateway import log_events as events
from tests.support.upstream import RecordingUpstream

REQUESTS = 40


def get(port: int, path: str = "/") -> int:
    """One request on its own connection (a new source port: the kernel picks a worker)."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    return int(data.split(b" ", 2)[1])


def requests_total(gateway: GatewayProcess) -> float:
    import urllib.request

    with urllib.request.urlopen(f"http://127.0.0.1:{gateway.admin_port}/metrics") as response:
        text = response.read().decode()
    return sum(
        float(match) for match in re.findall(r"^dijk_requests_total\{[^}]*\} (\S+)$", text, re.M)
    )


@pytest.fixture
def gateway(tmp_path: Path) -> Iterator[GatewayProcess]:
    upstream = RecordingUpstream().start()
    config = base_config(
        upstream.port,
        workers=2,
        logging={"access_log": True},
        audit={"url": "sqlite:///./audit.db", "flush_interval_ms": 50},
    )
    process = GatewayProcess(config, tmp_path)
    try:
        process.start(timeout=90)
        # /readyz answers as soon as one worker listens; the parent says when all do.
        assert wait_for(lambda: bool(events(process, "workers_started")), 90), process.logs()
        yield process
    finally:
        process.stop()


def worker_pids(gateway: GatewayProcess) -> set[int]:
    return {int(event["worker_pid"]) for event in events(gateway, "worker_started")}


def test_two_workers_serve_count_reload_restart_and_stop(gateway: GatewayProcess) -> None:
    assert gateway.process is not None
    parent = gateway.process.pid
    first = worker_pids(gateway)
    assert len(first) == 2
    assert parent not in first

    # Both processes serve: the access log names two worker PIDs.
    assert [get(gateway.port) for _ in range(REQUESTS)] == [200] * REQUESTS
    assert wait_for(lambda: len(events(gateway, "request")) >= REQUESTS, 10)
    served_by = {event["pid"] for event in events(gateway, "request")}
    assert served_by == first

    # One /metrics for both: the sum reaches every request (snapshots are <= 1 s old).
    assert wait_for(lambda: requests_total(gateway) == REQUESTS, 10), requests_total(gateway)

    # SIGHUP to the parent reloads every worker.
    gateway.config["routes"].append(
        {"name": "new", "match": {"path_prefix": "/new"}, "upstream": "echo"}
    )
    gateway.write_config()
    gateway.signal(signal.SIGHUP)
    assert wait_for(lambda: {e["pid"] for e in events(gateway, "reloaded")} == first)

    # A killed worker is restarted, logged; the other keeps serving; counts are kept.
    victim = min(first)
    os.kill(victim, signal.SIGKILL)
    assert wait_for(
        lambda: any(e["worker_pid"] == victim for e in events(gateway, "worker_exited"))
    )
    exited = next(e for e in events(gateway, "worker_exited") if e["worker_pid"] == victim)
    assert exited["exit"] == "SIGKILL"
    assert exited["restart_in_s"] > 0
    assert wait_for(lambda: len(events(gateway, "worker_ready")) == 1, 60)
    replacement = worker_pids(gateway) - first
    assert len(replacement) == 1
    # The replacement read the file as it is now: the route added before it started exists.
    assert [get(gateway.port, "/new/x") for _ in range(10)] == [200] * 10
    assert wait_for(lambda: requests_total(gateway) == REQUESTS + 10, 10)

    # SIGTERM drains both and the parent exits 0.
    assert gateway.stop() == 0
    stopped = {e["pid"] for e in events(gateway, "stopped")}
    assert stopped == (first - {victim}) | replacement
    assert events(gateway, "workers_stopped")


def test_each_worker_writes_its_own_intact_audit_chain(gateway: GatewayProcess) -> None:
    assert [get(gateway.port) for _ in range(REQUESTS)] == [200] * REQUESTS
    assert gateway.stop() == 0
    url = f"sqlite:///{gateway.directory / 'audit.db'}"
    result = subprocess.run(
        [sys.executable, "-m", "dijk", "audit", "verify", "--db", url, "--format", "json"],
        capture_output=True,
        text=True,
        cwd=gateway.directory,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    report = json.loads(result.stdout)
    chains = {chain["chain"]: chain for chain in report["chains"]}
    assert set(chains) == {"default-w1", "default-w2"}
    assert report["intact"]
    assert not any(chain["problems"] for chain in chains.values())
    assert sum(chain["records"] for chain in chains.values()) == REQUESTS
