"""DoS guards through a real gateway: load shedding and per-consumer concurrency caps."""

from __future__ import annotations

import json
import time
import urllib.request
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

from tests.e2e.test_ratelimit_gateway import KEY_A, KEY_B, call, config_with, with_keys
from tests.support.gateway import GatewayProcess
from tests.support.upstream import RecordingUpstream


def test_overload_sheds_with_503_while_health_keeps_answering(
    start_gateway: Callable[..., GatewayProcess], recording: RecordingUpstream
) -> None:
    config = config_with(
        recording,
        {"match": {"path_prefix": "/"}},
        overload={"max_in_flight": 4, "retry_after_s": 3},
    )
    gateway = start_gateway(config)

    def slow(_: int) -> tuple[int, dict[str, str], bytes]:
        return call(gateway.port, "/slow?s=1.5")

    with ThreadPoolExecutor(max_workers=10) as pool:
        futures = [pool.submit(slow, n) for n in range(10)]
        time.sleep(0.5)
        started = time.monotonic()
        with urllib.request.urlopen(
            f"http://127.0.0.1:{gateway.admin_port}/healthz", timeout=5
        ) as health:
            assert health.status == 200
        assert time.monotonic() - started < 0.5
        results = [future.result() for future in futures]
    statuses = Counter(status for status, _, _ in results)
    assert statuses == Counter({200: 4, 503: 6}), statuses
    shed = next(result for result in results if result[0] == 503)
    assert json.loads(shed[2])["reason"] == "overload.shed"
    assert shed[1]["retry-after"] == "3"
    # Once the load is gone, requests pass again.
    assert call(gateway.port)[0] == 200
    with urllib.request.urlopen(f"http://127.0.0.1:{gateway.admin_port}/metrics") as response:
        assert 'dijk_overload_shed_total{cause="in_flight"} 6.0' in response.read().decode()


def test_concurrency_cap_per_consumer(
    start_gateway: Callable[..., GatewayProcess], recording: RecordingUpstream
) -> None:
    config = with_keys(
        config_with(recording, {"match": {"path_prefix": "/"}, "auth": ["api_key"]}),
        max_concurrent_requests=2,
    )
    gateway = start_gateway(config)

    def slow(key: str) -> int:
        return call(gateway.port, "/slow?s=1", headers={"X-API-Key": key})[0]

    with ThreadPoolExecutor(max_workers=8) as pool:
        alpha = pool.map(slow, [KEY_A] * 5)
        beta = pool.map(slow, [KEY_B] * 3)
        alpha_statuses, beta_statuses = Counter(alpha), Counter(beta)
    assert alpha_statuses == Counter({200: 2, 429: 3}), alpha_statuses
    assert beta_statuses == Counter({200: 3})
    status, headers, body = 0, {}, b""
    with ThreadPoolExecutor(max_workers=3) as pool:
        futures = [pool.submit(call, gateway.port, "/slow?s=1", "GET", {"X-API-Key": KEY_A})]
        futures += [pool.submit(call, gateway.port, "/slow?s=1", "GET", {"X-API-Key": KEY_A})]
        time.sleep(0.3)
        status, headers, body = call(gateway.port, headers={"X-API-Key": KEY_A})
        for future in futures:
            future.result()
    assert status == 429
    assert json.loads(body)["reason"] == "ratelimit.concurrency_exceeded"
    assert headers["retry-after"] == "1"
    # Slots are given back: the cap does not leak.
    assert call(gateway.port, headers={"X-API-Key": KEY_A})[0] == 200
