"""The decision engine in process: the same compiled state as inline mode, no sockets."""

from __future__ import annotations

import hashlib
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from dijk.audit.store import AuditQuery
from dijk.config.models import DijkConfig
from dijk.proxy.decision import DecisionEngine, Original, Verdict
from dijk.proxy.gateway import Gateway
from dijk.proxy.state import GatewayState, build_state

KEY = "unit-decision-key-0123456789abcdef"


def config(tmp_path: Path, **extra: Any) -> DijkConfig:
    return DijkConfig.model_validate(
        {
            "version": 1,
            "upstreams": {"up": {"url": "http://127.0.0.1:9"}},
            "consumers": [
                {
                    "name": "alice",
                    "api_keys": [{"sha256": hashlib.sha256(KEY.encode()).hexdigest()}],
                    "scopes": ["items:write", "items:read"],
                }
            ],
            "auth": {"api_key": {"header": "X-API-Key", "query_param": "api_key"}},
            "audit": {"url": f"sqlite:///{tmp_path / 'audit.db'}", "durability": "strict"},
            "routes": [
                {
                    "name": "items",
                    "match": {"path_prefix": "/items"},
                    "upstream": "up",
                    "auth": ["api_key"],
                    "hide_credentials": True,
                    "waf": {"mode": "block"},
                }
            ],
            **extra,
        }
    )


@pytest.fixture
async def state(tmp_path: Path) -> AsyncIterator[GatewayState]:
    compiled = build_state(config(tmp_path), 1)
    await compiled.start()
    yield compiled
    await compiled.close()


async def decide(state: GatewayState, original: Original) -> Verdict:
    engine = DecisionEngine(Gateway(state))
    ctx = engine.begin(state, original, time.perf_counter())
    try:
        verdict = await engine.decide(state, ctx, original)
        await engine.settle(state, verdict, 0)
        return verdict
    finally:
        await engine.finish(state, ctx, "unit")


def original(target: str, headers: list[tuple[str, str]], **extra: Any) -> Original:
    return Original(
        method=extra.pop("method", "GET"),
        target=target,
        headers=headers,
        client_ip="198.51.100.30",
        request_id=extra.pop("request_id", "unit-request-1"),
        **extra,
    )


async def test_a_key_in_the_query_is_named_for_removal_when_the_route_hides_credentials(
    state: GatewayState,
) -> None:
    verdict = await decide(state, original(f"/items?api_key={KEY}&page=2", []))
    assert verdict.allowed
    assert verdict.remove_query == ["api_key"]
    assert verdict.remove_headers == []
    assert ("x-dijk-consumer", "alice") in verdict.upstream_headers


async def test_the_key_header_is_named_for_removal_and_scopes_are_sorted(
    state: GatewayState,
) -> None:
    verdict = await decide(state, original("/items", [("x-api-key", KEY)]))
    assert verdict.remove_headers == ["x-api-key"]
    assert ("x-dijk-scopes", "items:read items:write") in verdict.upstream_headers


async def test_a_forwarded_body_is_inspected_and_an_unseen_one_is_noted(
    state: GatewayState,
) -> None:
    headers = [("x-api-key", KEY), ("content-type", "application/json")]
    attack = b'{"q": "1 UNION SELECT password FROM users"}'
    verdict = await decide(
        state, original("/items", headers, method="POST", body=attack, content_length=len(attack))
    )
    assert verdict.decision is not None
    assert verdict.decision.reason == "waf.sqli"
    verdict = await decide(state, original("/items", headers, method="POST", content_length=44))
    assert verdict.allowed  # nginx never sends the body: it cannot be judged here
    assert verdict.ctx.annotations.get("decision.body_unseen") is True


async def test_each_decision_is_one_committed_audit_record_under_strict_durability(
    state: GatewayState,
) -> None:
    await decide(state, original("/items", [("x-api-key", KEY)], request_id="unit-allow"))
    await decide(state, original("/items", [], request_id="unit-deny"))
    audit = state.resources.audit
    assert audit is not None
    assert audit.service is not None
    page = await audit.service.writer.store.query(AuditQuery(limit=100))
    found = {row.record.request_id: row.record for row in page.records}
    assert sorted(found) == ["unit-allow", "unit-deny"]
    assert (found["unit-allow"].status, found["unit-allow"].decision) == (200, "allow")
    assert (found["unit-deny"].status, found["unit-deny"].reason) == (
        401,
        "auth.missing_credentials",
    )


async def test_a_target_that_is_not_a_path_is_refused(state: GatewayState) -> None:
    verdict = await decide(state, original("http://elsewhere/items", [("x-api-key", KEY)]))
    assert verdict.decision is not None
    assert verdict.decision.reason == "http.invalid_target"
