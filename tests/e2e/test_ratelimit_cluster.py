"""Exactness across instances: three real `dijk serve` processes sharing one Redis."""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from tests.conftest import require_service
from tests.e2e.test_ratelimit_gateway import call
from tests.support.gateway import GatewayProcess, base_config, free_port
from tests.support.redis import REDIS_URL, redis_up
from tests.support.upstream import RecordingUpstream

pytestmark = [pytest.mark.redis, pytest.mark.slow]


def _three(
    start_gateway: Callable[..., GatewayProcess], upstream: RecordingUpstream, rule: dict[str, Any]
) -> list[GatewayProcess]:
    require_service(redis_up(), f"Redis is not reachable at {REDIS_URL}")
    prefix = f"cluster{uuid.uuid4().hex[:12]}:"
    gateways = []
    for _ in range(3):
        config = base_config(upstream.port)
        config["listen"]["port"], config["admin"]["port"] = free_port(), free_port()
        config["storage"] = {"url": REDIS_URL, "timeout_s": 1.0}
        config["ratelimit"] = {"key_prefix": prefix}
        config["routes"][0]["rate_limit"] = [rule]
        gateways.append(start_gateway(config))
    return gateways


def _fire(gateways: list[GatewayProcess], total: int) -> Counter[int]:
    ports = [gateways[index % len(gateways)].port for index in range(total)]
    with ThreadPoolExecutor(max_workers=24) as pool:
        statuses = list(pool.map(lambda port: call(port)[0], ports))
    return Counter(statuses)


@pytest.mark.parametrize(
    "rule",
    [
        {"key": "route", "limit": 60, "per_s": 3600},
        {"key": "route", "limit": 60, "per_s": 3600, "algorithm": "gcra"},
    ],
    ids=["sliding_window", "gcra"],
)
def test_three_instances_admit_exactly_the_limit_in_total(
    start_gateway: Callable[..., GatewayProcess],
    recording: RecordingUpstream,
    rule: dict[str, Any],
) -> None:
    gateways = _three(start_gateway, recording, rule)
    statuses = _fire(gateways, 240)
    assert statuses[200] == 60, statuses
    assert statuses[429] == 180, statuses
    assert len(recording.requests) == 60


def test_three_instances_never_refuse_under_the_limit(
    start_gateway: Callable[..., GatewayProcess], recording: RecordingUpstream
) -> None:
    gateways = _three(start_gateway, recording, {"key": "ip", "limit": 90, "per_s": 3600})
    statuses = _fire(gateways, 90)
    assert statuses == Counter({200: 90})
