"""GatewayServer.reload: compiled in a worker thread, one at a time, coalesced, swapped on the
loop; and GatewayState builds without an event loop (every resource a reload may build).

The loader stands in for reading the file: it blocks, in the worker thread, until the test
lets it go, so what happens while a reload compiles is deterministic.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from dijk.cli.demo import demo_config_text
from dijk.config import ConfigError, ConfigIssue, DijkConfig, load_config_text
from dijk.proxy.server import GatewayServer, ReloadResult
from dijk.proxy.state import build_state


def config_with(*paths: str, **extra: Any) -> DijkConfig:
    data: dict[str, Any] = {
        "version": 1,
        "listen": {"address": "127.0.0.1", "port": 18080},
        "admin": {"address": "127.0.0.1", "port": 18081},
        "upstreams": {"echo": {"url": "http://127.0.0.1:18082"}},
        "routes": [
            {"name": path.strip("/"), "match": {"path": path}, "upstream": "echo"} for path in paths
        ],
        "audit": {"enabled": False},
        **extra,
    }
    return load_config_text(yaml.safe_dump(data), "dijk.yaml")


class SlowFile:
    """A loader that reads ``self.current`` when called, then waits for its gate (a slow
    compile) before returning it."""

    def __init__(self, current: DijkConfig) -> None:
        self.current: DijkConfig | Callable[[], DijkConfig] = current
        self.calls = 0
        self.threads: list[int] = []
        self.entered = [threading.Event() for _ in range(8)]
        self.gates = [threading.Event() for _ in range(8)]

    def __call__(self) -> DijkConfig:
        call = self.calls
        self.calls += 1
        self.threads.append(threading.get_ident())
        current = self.current  # the file as it is when the reload reads it
        self.entered[call].set()
        assert self.gates[call].wait(10), "the test never let the loader go"
        return current() if callable(current) else current

    async def wait_entered(self, call: int) -> None:
        """Wait, on the event loop (which keeps running), for call ``call`` to start."""
        for _ in range(1000):
            if self.entered[call].is_set():
                return
            await asyncio.sleep(0.005)
        raise AssertionError(f"loader call {call} never started")


def routes(server: GatewayServer) -> list[str]:
    return [route.name for route in server.state.router.routes]


async def settle() -> None:
    for _ in range(10):
        await asyncio.sleep(0)


async def test_reload_compiles_off_the_loop_and_swaps_on_it() -> None:
    loader = SlowFile(config_with("/ok", "/new"))
    server = GatewayServer(config_with("/ok"), "dijk.yaml", loader)
    pending = asyncio.ensure_future(server.reload())
    await loader.wait_entered(0)  # the loop runs while the loader blocks its thread
    assert loader.threads[0] != threading.get_ident()
    assert server.state.generation == 1  # nothing swapped while compiling
    loader.gates[0].set()
    result = await pending
    assert (result.ok, result.generation, result.errors) == (True, 2, [])
    assert server.state.generation == 2
    assert routes(server) == ["ok", "new"]
    await server.stop()


async def test_reloads_requested_while_one_compiles_coalesce_and_the_last_file_wins() -> None:
    loader = SlowFile(config_with("/ok", "/first"))
    server = GatewayServer(config_with("/ok"), "dijk.yaml", loader)
    first = asyncio.ensure_future(server.reload())
    await loader.wait_entered(0)

    loader.current = config_with("/ok", "/second")
    second = asyncio.ensure_future(server.reload())
    third = asyncio.ensure_future(server.reload())
    await settle()
    assert loader.calls == 1  # never two compiles at once
    loader.current = config_with("/ok", "/third")  # written before the queued one reads it
    assert loader.calls == 1

    loader.gates[0].set()
    assert await first == ReloadResult(True, 2, [], [])
    await loader.wait_entered(1)
    assert routes(server) == ["ok", "first"]
    loader.gates[1].set()
    results = await asyncio.gather(second, third)
    assert results[0] == results[1] == ReloadResult(True, 3, [], [])
    assert loader.calls == 2  # the two requests shared one reload
    assert routes(server) == ["ok", "third"]
    assert server.state.generation == 3

    # a request after that is a reload of its own
    loader.gates[2].set()
    assert (await server.reload()).generation == 4
    assert loader.calls == 3
    await server.stop()


async def test_a_caller_going_away_does_not_cancel_the_reload() -> None:
    loader = SlowFile(config_with("/ok", "/new"))
    server = GatewayServer(config_with("/ok"), "dijk.yaml", loader)
    caller = asyncio.ensure_future(server.reload())
    await loader.wait_entered(0)
    caller.cancel()  # e.g. the admin connection closed
    with pytest.raises(asyncio.CancelledError):
        await caller
    loader.gates[0].set()
    for _ in range(1000):
        if server.state.generation == 2:
            break
        await asyncio.sleep(0.005)
    assert routes(server) == ["ok", "new"]
    await server.stop()


async def test_a_config_error_in_the_worker_keeps_the_old_state_and_reports_it() -> None:
    issue = ConfigIssue("dijk.yaml", 3, "routes[0].upstream", "unknown upstream 'nope'")

    def broken() -> DijkConfig:
        raise ConfigError([issue])

    loader = SlowFile(config_with("/ok"))
    loader.current = broken
    server = GatewayServer(config_with("/ok"), "dijk.yaml", loader)
    before = server.state
    loader.gates[0].set()
    result = await server.reload()
    assert result == ReloadResult(False, 1, [issue.format()], [])
    assert server.state is before

    # a compile error raised by build_state in the worker: same, with its message
    loader.current = load_config_text(
        yaml.safe_dump(
            {
                "version": 1,
                "upstreams": {"echo": {"url": "http://127.0.0.1:18082"}},
                "routes": [
                    {"name": "bad", "match": {"path_template": "/u/{id}/{id}"}, "upstream": "echo"}
                ],
                "audit": {"enabled": False},
            }
        ),
        "dijk.yaml",
    )
    loader.gates[1].set()
    result = await server.reload()
    assert not result.ok
    assert result.generation == 1
    assert any("repeats" in error for error in result.errors), result
    assert server.state is before
    await server.stop()


async def test_a_bug_in_the_worker_keeps_the_old_state() -> None:
    def bug() -> DijkConfig:
        raise RuntimeError("boom")

    loader = SlowFile(config_with("/ok"))
    loader.current = bug
    server = GatewayServer(config_with("/ok"), "dijk.yaml", loader)
    loader.gates[0].set()
    result = await server.reload()
    assert result == ReloadResult(False, 1, ["RuntimeError: boom"], [])
    assert server.state.generation == 1
    await server.stop()


async def test_stop_abandons_a_reload_that_is_compiling() -> None:
    loader = SlowFile(config_with("/ok", "/new"))
    server = GatewayServer(config_with("/ok"), "dijk.yaml", loader)
    compiling = asyncio.ensure_future(server.reload())
    await loader.wait_entered(0)
    queued = asyncio.ensure_future(server.reload())
    await settle()
    await server.stop()
    for pending in (compiling, queued):
        with pytest.raises(asyncio.CancelledError):
            await pending
    loader.gates[0].set()  # the thread finishes; its state is dropped
    await asyncio.sleep(0.05)
    assert server.state.generation == 1
    assert loader.calls == 1  # the queued reload never started
    result = await server.reload()
    assert result == ReloadResult(False, 1, ["the gateway is stopping"], [])


async def test_every_resource_builds_without_an_event_loop(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What build_state makes in the worker thread needs no loop; start() then runs on it.

    The demo configuration (OpenAPI, attack detection, privacy, rate limits, API keys,
    audit log) with Redis storage (a pool is made, nothing connects), a JWKS URL and
    token introspection.
    """
    monkeypatch.setenv("DIJK_DEMO_KEY_READ", "dk_read_for_the_reload_thread_test")
    monkeypatch.setenv("DIJK_DEMO_KEY_WRITE", "dk_write_for_the_reload_thread_test")
    monkeypatch.setenv("INTROSPECTION_SECRET", "not-a-real-secret")
    data = yaml.safe_load(demo_config_text())
    data["storage"] = {"url": "redis://127.0.0.1:6399/0"}
    data["audit"]["url"] = f"sqlite:///{tmp_path / 'audit.db'}"
    data["auth"]["jwt"] = {
        "jwks_url": "https://issuer.example/jwks.json",
        "issuer": "https://issuer.example",
        "audience": "dijk",
        "algorithms": ["RS256"],
    }
    data["auth"]["introspection"] = {
        "url": "https://issuer.example/introspect",
        "client_id": "dijk",
        "client_secret_env": "INTROSPECTION_SECRET",
    }
    data["routes"][0]["auth"] = ["jwt", "introspection"]
    config = load_config_text(yaml.safe_dump(data), str(tmp_path / "dijk.yaml"))
    state = await asyncio.to_thread(build_state, config, 2, "demo.yaml")
    assert state.resources.identity is not None
    assert state.resources.identity.jwt is not None
    assert state.resources.identity.introspection is not None
    assert state.resources.privacy is not None
    assert len(state.resources.detectors) == 1
    assert state.resources.openapi
    await state.start()
    try:
        assert state.resources.audit is not None
        assert state.resources.audit.service is not None
    finally:
        await state.close()
