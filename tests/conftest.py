"""Shared fixtures: real upstreams and real gateway processes on loopback."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.gateway import GatewayProcess, base_config
from tests.support.redis_server import REDIS_SERVER, PrivateRedis
from tests.support.upstream import RecordingUpstream

REPO = Path(__file__).resolve().parents[1]
CORPORA = Path(os.environ.get("DIJK_CORPORA", REPO.parent / "shared" / "corpora"))
IN_CI = os.environ.get("CI") == "true"


def require_service(available: bool, reason: str) -> None:
    """Skip when a backing service is missing, except in CI where it is a failure."""
    if available:
        return
    if IN_CI:
        pytest.fail(f"{reason} (CI=true: backend tests must not skip)")
    pytest.skip(reason)


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[PrivateRedis]:
    """A private redis-server on a free port that the test may stop and restart (the
    shared Redis is never touched)."""
    require_service(REDIS_SERVER is not None, "redis-server is not installed")
    server = PrivateRedis(tmp_path)
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def upstream() -> Iterator[RecordingUpstream]:
    server = RecordingUpstream().start()
    yield server
    server.stop()


@pytest.fixture
def recording(upstream: RecordingUpstream) -> RecordingUpstream:
    upstream.reset()
    return upstream


@pytest.fixture
def start_gateway(
    tmp_path: Path, upstream: RecordingUpstream
) -> Iterator[Callable[..., GatewayProcess]]:
    started: list[GatewayProcess] = []

    def start(
        config: dict[str, Any] | None = None, env: dict[str, str] | None = None, **overrides: Any
    ) -> GatewayProcess:
        directory = tmp_path / f"gw{len(started)}"
        directory.mkdir()
        gateway = GatewayProcess(config or base_config(upstream.port, **overrides), directory, env)
        started.append(gateway)
        return gateway.start()

    yield start
    for gateway in started:
        gateway.stop()
