"""Rate limits through a real `dijk serve` process: headers, 429s, quotas, storage outages."""

from __future__ import annotations

import hashlib
import http.client
import json
import signal
import time
import urllib.request
import uuid
from collections.abc import Callable
from typing import Any

from tests.support.gateway import GatewayProcess, base_config
from tests.support.upstream import RecordingUpstream

KEY_A, KEY_B = "ratelimit-key-a-0123456789", "ratelimit-key-b-0123456789"


def call(
    port: int,
    path: str = "/r",
    method: str = "GET",
    headers: dict[str, str] | None = None,
    body: bytes | None = None,
) -> tuple[int, dict[str, str], bytes]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        connection.request(method, path, body=body, headers=headers or {})
        response = connection.getresponse()
        merged: dict[str, str] = {}
        for name, value in response.getheaders():
            lower = name.lower()
            merged[lower] = f"{merged[lower]}, {value}" if lower in merged else value
        return response.status, merged, response.read()
    finally:
        connection.close()


def config_with(upstream: RecordingUpstream, route: dict[str, Any], **top: Any) -> dict[str, Any]:
    config = base_config(upstream.port)
    config["routes"] = [{"name": "limited", "upstream": "echo", **route}]
    config["ratelimit"] = {"key_prefix": f"t{uuid.uuid4().hex[:12]}:"}
    config.update(top)
    return config


def with_keys(config: dict[str, Any], **consumer_extra: Any) -> dict[str, Any]:
    config["auth"] = {"api_key": {"header": "X-API-Key"}}
    config["consumers"] = [
        {
            "name": "alpha",
            "api_keys": [{"sha256": hashlib.sha256(KEY_A.encode()).hexdigest()}],
            **consumer_extra,
        },
        {"name": "beta", "api_keys": [{"sha256": hashlib.sha256(KEY_B.encode()).hexdigest()}]},
    ]
    return config


def test_ip_limit_counts_down_then_refuses_with_429_problem(
    start_gateway: Callable[..., GatewayProcess], recording: RecordingUpstream
) -> None:
    gateway = start_gateway(
        config_with(
            recording,
            {"match": {"path_prefix": "/"}, "rate_limit": [{"key": "ip", "limit": 3, "per_s": 60}]},
        )
    )
    seen = []
    for _ in range(3):
        status, headers, _ = call(gateway.port)
        assert status == 200
        assert headers["ratelimit-policy"] == '"ip-60s";q=3;w=60'
        seen.append(headers["ratelimit"])
    assert [item.split(";")[1] for item in seen] == ["r=2", "r=1", "r=0"]
    status, headers, body = call(gateway.port)
    assert status == 429
    assert headers["content-type"] == "application/problem+json"
    problem = json.loads(body)
    assert problem["reason"] == "ratelimit.exceeded"
    assert problem["type"] == "https://dijk.dev/problems/ratelimit.exceeded"
    assert 1 <= int(headers["retry-after"]) <= 120
    assert headers["ratelimit-policy"] == '"ip-60s";q=3;w=60'
    assert headers["ratelimit"].startswith('"ip-60s";r=0;t=')
    assert len(recording.requests) == 3


def test_consumer_limit_is_per_consumer_and_quota_on_consumer_says_quota_exceeded(
    start_gateway: Callable[..., GatewayProcess], recording: RecordingUpstream
) -> None:
    config = with_keys(
        config_with(
            recording,
            {
                "match": {"path_prefix": "/"},
                "auth": ["api_key"],
                "rate_limit": [{"key": "consumer", "limit": 5, "per_s": 60}],
            },
        ),
        rate_limit=[{"limit": 2, "per": "day"}],
    )
    gateway = start_gateway(config)
    statuses = [call(gateway.port, headers={"X-API-Key": KEY_A})[0] for _ in range(2)]
    assert statuses == [200, 200]
    status, headers, body = call(gateway.port, headers={"X-API-Key": KEY_A})
    assert status == 429
    assert json.loads(body)["reason"] == "ratelimit.quota_exceeded"
    assert '"consumer-day";q=2;w=86400' in headers["ratelimit-policy"]
    assert int(headers["retry-after"]) <= 86400
    # beta has no quota of its own and its own per-consumer window.
    statuses = [call(gateway.port, headers={"X-API-Key": KEY_B})[0] for _ in range(6)]
    assert statuses == [200] * 5 + [429]
    # Bad keys are refused by authentication before the consumer limit is consulted.
    assert call(gateway.port, headers={"X-API-Key": "nope"})[0] == 401


def test_gcra_allows_a_burst_then_paces(
    start_gateway: Callable[..., GatewayProcess], recording: RecordingUpstream
) -> None:
    rule = {"key": "route", "limit": 10, "per_s": 1, "algorithm": "gcra", "burst": 3}
    gateway = start_gateway(
        config_with(recording, {"match": {"path_prefix": "/"}, "rate_limit": [rule]})
    )
    statuses = [call(gateway.port)[0] for _ in range(5)]
    assert statuses[:3] == [200, 200, 200]
    assert 429 in statuses[3:]
    time.sleep(0.25)
    assert call(gateway.port)[0] == 200


def test_header_key_counts_each_value_apart(
    start_gateway: Callable[..., GatewayProcess], recording: RecordingUpstream
) -> None:
    rule = {"key": "header:X-Tenant", "limit": 1, "per_s": 60}
    gateway = start_gateway(
        config_with(recording, {"match": {"path_prefix": "/"}, "rate_limit": [rule]})
    )
    assert call(gateway.port, headers={"X-Tenant": "a"})[0] == 200
    assert call(gateway.port, headers={"X-Tenant": "a"})[0] == 429
    assert call(gateway.port, headers={"X-Tenant": "b"})[0] == 200
    assert call(gateway.port)[0] == 200  # no header: one shared bucket
    assert call(gateway.port)[0] == 429


def test_unreachable_redis_denies_fast_with_503_by_default(
    start_gateway: Callable[..., GatewayProcess], recording: RecordingUpstream
) -> None:
    config = config_with(
        recording,
        {"match": {"path_prefix": "/"}, "rate_limit": [{"key": "ip", "limit": 5, "per_s": 60}]},
        storage={"url": "redis://127.0.0.1:1/0", "timeout_s": 0.2},
    )
    gateway = start_gateway(config)
    for _ in range(3):
        started = time.monotonic()
        status, headers, body = call(gateway.port)
        assert time.monotonic() - started < 1.5
        assert status == 503
        assert json.loads(body)["reason"] == "ratelimit.storage_unavailable"
        assert "retry-after" in headers
    assert recording.requests == []
    with urllib.request.urlopen(f"http://127.0.0.1:{gateway.admin_port}/metrics") as response:
        text = response.read().decode()
    assert 'dijk_ratelimit_storage_errors_total{action="deny",stage="ratelimit_pre_auth"} 3.0' in (
        text
    )
    # Logged once per interval, not once per request.
    assert gateway.logs().count("ratelimit_storage_unavailable") == 1


def test_unreachable_redis_passes_when_configured_to_allow(
    start_gateway: Callable[..., GatewayProcess], recording: RecordingUpstream
) -> None:
    config = config_with(
        recording,
        {"match": {"path_prefix": "/"}, "rate_limit": [{"key": "ip", "limit": 5, "per_s": 60}]},
        storage={"url": "redis://127.0.0.1:1/0", "timeout_s": 0.2},
    )
    config["ratelimit"]["on_storage_error"] = "allow"
    gateway = start_gateway(config)
    started = time.monotonic()
    status, headers, _ = call(gateway.port)
    assert time.monotonic() - started < 1.5
    assert status == 200
    assert "ratelimit" not in headers


def test_reload_keeps_memory_counters(
    start_gateway: Callable[..., GatewayProcess], recording: RecordingUpstream
) -> None:
    config = config_with(
        recording,
        {"match": {"path_prefix": "/"}, "rate_limit": [{"key": "ip", "limit": 2, "per_s": 60}]},
    )
    gateway = start_gateway(config)
    assert [call(gateway.port)[0] for _ in range(2)] == [200, 200]
    config["routes"][0]["rate_limit"][0]["limit"] = 3
    gateway.write_config(config)
    gateway.signal(signal.SIGHUP)
    deadline = time.monotonic() + 10
    while "reloaded" not in gateway.logs() and time.monotonic() < deadline:
        time.sleep(0.05)
    status, headers, _ = call(gateway.port)
    assert status == 200
    assert '"ip-60s";r=0' in headers["ratelimit"]
    assert call(gateway.port)[0] == 429


def test_config_refuses_consumer_key_on_public_route(tmp_path: Any) -> None:
    import subprocess
    import sys

    import yaml

    config = base_config(9)
    config["routes"][0]["rate_limit"] = [{"key": "consumer", "limit": 1, "per_s": 1}]
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(config))
    result = subprocess.run(
        [sys.executable, "-m", "dijk", "config", "validate", str(path)], capture_output=True
    )
    assert result.returncode == 1
    assert b"routes[0].rate_limit[0].key: consumer is only known" in result.stderr
