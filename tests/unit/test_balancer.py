"""Choosing a target: weighted round robin, least connections, consistent hashing that
moves only the keys of a target that leaves, passive ejection, and a retry budget that
refuses once spent (no retry storm during an outage)."""

from __future__ import annotations

import asyncio
import collections
import time
from typing import Any

import pytest

from dijk.config.models import UpstreamConfig
from dijk.pipeline.context import RequestContext
from dijk.proxy.balancer import Balancer, Endpoint, build_balancer
from dijk.proxy.upstream import UpstreamError


def balancer(**config: Any) -> Balancer:
    return build_balancer("bank", UpstreamConfig.model_validate(config))


def ctx(ip: str = "192.0.2.1", headers: list[tuple[str, str]] | None = None) -> RequestContext:
    return RequestContext("id", "GET", "/", "", headers or [], ip, 1, "http", "1.1")


def targets(*weights: int) -> list[dict[str, Any]]:
    return [
        {"url": f"http://127.0.0.{index + 1}:80", "weight": weight}
        for index, weight in enumerate(weights)
    ]


def picks(chosen: Balancer, count: int, **kwargs: Any) -> list[str]:
    now = time.monotonic()
    found = [chosen._pick(ctx(**kwargs), now, []) for _ in range(count)]
    return [endpoint.url[-4:-3] for endpoint in found if endpoint is not None]


def test_round_robin_follows_the_weights_and_interleaves() -> None:
    chosen = balancer(targets=targets(5, 1, 1))
    sequence = picks(chosen, 7)
    assert collections.Counter(sequence) == {"1": 5, "2": 1, "3": 1}
    assert sequence != ["1"] * 5 + ["2", "3"]  # smooth: not five in a row


def test_least_connections_prefers_the_target_with_fewest_in_use() -> None:
    chosen = balancer(targets=targets(1, 1), balance="least_connections")
    chosen.endpoints[0].pool.connecting = 3
    assert picks(chosen, 3) == ["2", "2", "2"]


def test_consistent_hash_keeps_keys_on_their_target_and_moves_only_a_leaving_ones() -> None:
    chosen = balancer(targets=targets(1, 1, 1), balance="consistent_hash", hash_on="header:x-user")
    users = [f"user-{n}" for n in range(200)]
    before = {u: picks(chosen, 1, headers=[("x-user", u)])[0] for u in users}
    assert before == {u: picks(chosen, 1, headers=[("x-user", u)])[0] for u in users}
    assert set(before.values()) == {"1", "2", "3"}
    chosen.endpoints[2].down = True
    after = {u: picks(chosen, 1, headers=[("x-user", u)])[0] for u in users}
    assert all(after[u] == before[u] for u in users if before[u] != "3")
    assert "3" not in after.values()


def test_consistent_hash_without_the_header_hashes_on_the_client_address() -> None:
    chosen = balancer(targets=targets(1, 1, 1), balance="consistent_hash", hash_on="cookie:sid")
    by_ip = {ip: picks(chosen, 1, ip=ip)[0] for ip in (f"10.0.0.{n}" for n in range(50))}
    assert by_ip == {ip: picks(chosen, 1, ip=ip)[0] for ip in by_ip}
    assert len(set(by_ip.values())) > 1


def test_consecutive_connect_failures_eject_a_target_for_a_while() -> None:
    chosen = balancer(targets=targets(1, 1), passive_health={"failures": 2, "eject_s": 60})
    first: Endpoint = chosen.endpoints[0]
    error = UpstreamError(502, "upstream.connect_failed", "x")
    chosen._failed(first, error)
    assert first.usable(time.monotonic())
    chosen._failed(first, error)
    assert not first.usable(time.monotonic())
    assert picks(chosen, 4) == ["2"] * 4


def test_every_target_ejected_answers_503_no_healthy_target() -> None:
    chosen = balancer(targets=targets(1, 1))
    for endpoint in chosen.endpoints:
        endpoint.down = True
    with pytest.raises(UpstreamError) as raised:
        asyncio.run(chosen.connect(ctx()))
    assert (raised.value.status, raised.value.reason) == (503, "upstream.no_healthy_target")


def test_a_spent_retry_budget_answers_the_failure_instead_of_retrying() -> None:
    # Nothing listens on 127.0.0.1:9 / :10 (discard ports, refused on loopback).
    chosen = balancer(
        targets=[{"url": "http://127.0.0.1:9"}, {"url": "http://127.0.0.1:10"}],
        retries={"attempts": 1, "budget_ratio": 0, "min_per_s": 0},
        passive_health={"failures": 100},
    )
    assert chosen._budget is not None
    chosen._budget.tokens = 0
    opened: list[int] = []
    for endpoint in chosen.endpoints:
        original = endpoint.pool.connect

        async def spy(original: Any = original, port: int = endpoint.pool.port) -> Any:
            opened.append(port)
            return await original()

        endpoint.pool.connect = spy  # type: ignore[method-assign]
    with pytest.raises(UpstreamError) as raised:
        asyncio.run(chosen.connect(ctx()))
    assert raised.value.reason == "upstream.connect_failed"
    assert len(opened) == 1  # no second target tried


def test_the_single_url_form_still_works_and_https_urls_are_accepted() -> None:
    chosen = balancer(url="https://127.0.0.1:8443")
    assert len(chosen.endpoints) == 1
    assert chosen.endpoints[0].pool.ssl_context is not None
    assert chosen.endpoints[0].pool.ssl_context.check_hostname  # verification on by default


def test_url_and_targets_together_are_refused() -> None:
    with pytest.raises(ValueError, match="exactly one of 'url' or 'targets'"):
        UpstreamConfig.model_validate({"url": "http://a:1", "targets": targets(1)})
