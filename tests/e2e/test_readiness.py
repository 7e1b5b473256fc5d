"""``/readyz`` says "not ready" while a fail-closed dependency is down.

While the rate-limit store (``on_storage_error: deny``) or the audit store
(``on_sink_error: deny``) is down, every request that needs it is refused; a load
balancer must see that on ``/readyz`` and route around the instance. When the dependency
returns, the instance is ready again and requests pass. Outages are made on a private
redis-server and on a TCP proxy in front of PostgreSQL: the shared services stay up.
"""

from __future__ import annotations

import asyncio
import http.client
import json
import time
import uuid
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

import asyncpg  # type: ignore[import-untyped]
import pytest

from tests.integration.test_audit_contract import postgres_url
from tests.support.gateway import GatewayProcess, base_config
from tests.support.redis_server import PrivateRedis
from tests.support.tcp_proxy import ThreadedTcpProxy
from tests.support.upstream import RecordingUpstream


def call(port: int, path: str = "/r", request_id: str = "") -> tuple[int, dict[str, Any]]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        connection.request("GET", path, headers={"X-Request-Id": request_id} if request_id else {})
        response = connection.getresponse()
        body = response.read()
        try:
            parsed = json.loads(body) if body else {}
        except ValueError:
            parsed = {}
        return response.status, parsed
    finally:
        connection.close()


def wait_for(predicate: Callable[[], bool], timeout_s: float, what: str) -> float:
    started = time.monotonic()
    while not predicate():
        assert time.monotonic() - started < timeout_s, f"timed out waiting for {what}"
        time.sleep(0.05)
    return time.monotonic() - started


def limited_config(
    upstream: RecordingUpstream, redis_server: PrivateRedis, **ratelimit: Any
) -> dict[str, Any]:
    """One rate-limited route, its counters in the private Redis."""
    config = base_config(upstream.port)
    config["storage"] = {"url": redis_server.url, "timeout_s": 0.25}
    config["ratelimit"] = ratelimit
    config["routes"] = [
        {
            "name": "limited",
            "upstream": "echo",
            "match": {"path_prefix": "/"},
            "rate_limit": [{"key": "ip", "limit": 1000, "per_s": 60}],
        }
    ]
    return config


def test_readyz_fails_while_a_deny_rate_limit_store_is_down(
    start_gateway: Callable[..., GatewayProcess],
    recording: RecordingUpstream,
    redis_server: PrivateRedis,
) -> None:
    config = limited_config(recording, redis_server)
    gateway = start_gateway(config)
    assert call(gateway.admin_port, "/readyz") == (200, {"status": "ready"})
    assert call(gateway.port)[0] == 200

    redis_server.stop()
    status, body = call(gateway.admin_port, "/readyz")
    assert status == 503
    assert body["status"] == "unavailable"
    assert [item["dependency"] for item in body["failing"]] == ["ratelimit"]
    assert body["failing"][0]["reason"] == "ratelimit.storage_unavailable"
    status, problem = call(gateway.port)
    assert (status, problem["reason"]) == (503, "ratelimit.storage_unavailable")

    redis_server.start()  # same port, empty
    wait_for(lambda: call(gateway.admin_port, "/readyz")[0] == 200, 5, "ready again")
    statuses = [call(gateway.port)[0] for _ in range(20)]
    assert statuses == [200] * 20


def test_readyz_stays_ready_when_the_outage_policy_lets_requests_through(
    start_gateway: Callable[..., GatewayProcess],
    recording: RecordingUpstream,
    redis_server: PrivateRedis,
) -> None:
    config = limited_config(recording, redis_server, on_storage_error="allow")
    gateway = start_gateway(config)
    redis_server.stop()
    assert call(gateway.port)[0] == 200  # passed unchecked, per policy
    assert call(gateway.admin_port, "/readyz") == (200, {"status": "ready"})


@pytest.mark.postgres
def test_readyz_fails_while_a_deny_audit_store_is_down(
    start_gateway: Callable[..., GatewayProcess], recording: RecordingUpstream
) -> None:
    base = urlsplit(asyncio.run(postgres_url()))
    proxy = ThreadedTcpProxy(base.hostname or "127.0.0.1", base.port or 5432)
    proxy.start()
    table = f"audit_{uuid.uuid4().hex[:12]}"
    try:
        url = f"postgresql://{base.username}@127.0.0.1:{proxy.port}{base.path}?table={table}"
        config = base_config(
            recording.port,
            audit={"url": url, "durability": "strict", "on_sink_error": "deny"},
            # The test client stands in for a proxy: its X-Request-Id names the records.
            trusted_proxies=["127.0.0.1/32"],
        )
        gateway = start_gateway(config, env={"DIJK_AUDIT_KEY": "readiness-secret-0123456789abcdef"})
        assert call(gateway.port)[0] == 200
        assert call(gateway.admin_port, "/readyz")[0] == 200

        proxy.stop()
        # No request needed: the readiness probe asks the store (at most once a second)
        # and finds it down.
        wait_for(lambda: call(gateway.admin_port, "/readyz")[0] == 503, 5, "not ready")
        status, body = call(gateway.admin_port, "/readyz")
        assert status == 503
        assert [item["dependency"] for item in body["failing"]] == ["audit"]
        forwarded = len(recording.requests)
        status, problem = call(gateway.port, request_id="refused-before-forwarding")
        assert (status, problem["reason"]) == (503, "audit.unavailable")
        assert len(recording.requests) == forwarded  # refused before the upstream

        proxy.start()
        wait_for(lambda: call(gateway.admin_port, "/readyz")[0] == 200, 5, "ready again")
        assert call(gateway.port, request_id="after-the-outage")[0] == 200
        records = asyncio.run(_records(table))
        assert records["refused-before-forwarding"] == (503, "deny", "audit.unavailable")
        assert records["after-the-outage"] == (200, "allow", None)
        assert len(records) == 3  # one per answer: 200, 503, 200
    finally:
        proxy.close()
        asyncio.run(_drop(table))


async def _records(table: str) -> dict[str, tuple[int, str, str | None]]:
    connection = await asyncpg.connect(await postgres_url())
    try:
        rows = await connection.fetch(f"SELECT request_id, status, decision, reason FROM {table}")
    finally:
        await connection.close()
    return {row["request_id"]: (row["status"], row["decision"], row["reason"]) for row in rows}


async def _drop(table: str) -> None:
    connection = await asyncpg.connect(await postgres_url())
    try:
        await connection.execute(f"DROP TABLE IF EXISTS {table}, {table}_checkpoint")
    finally:
        await connection.close()
