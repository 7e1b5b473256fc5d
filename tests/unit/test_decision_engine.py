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


def _routes_with_a_public_one() -> list[dict[str, Any]]:
    return [
        {"name": "open", "match": {"path_prefix": "/open"}, "upstream": "up", "auth": []},
        {
            "name": "items",
            "match": {"path_prefix": "/items"},
            "upstream": "up",
            "auth": ["api_key"],
            "hide_credentials": True,
        },
    ]


@pytest.fixture
async def open_state(tmp_path: Path) -> AsyncIterator[GatewayState]:
    compiled = build_state(config(tmp_path, routes=_routes_with_a_public_one()), 1)
    await compiled.start()
    yield compiled
    await compiled.close()


@pytest.mark.parametrize(
    "target",
    [
        "/items//../open/x",  # '/open/x' to Dijk, '/items/open/x' to an upstream keeping '//'
        "/items/a//../../open",
        "/open/../open/x",
        "/open/./x",
        "/open/%2e%2e/open/x",
        "//open/x",
        "/open//x?q=1",
    ],
)
async def test_a_path_not_in_normal_form_is_refused_as_the_proxy_forwards_it_as_sent(
    open_state: GatewayState, target: str
) -> None:
    verdict = await decide(open_state, original(target, []))
    assert verdict.decision is not None
    assert (verdict.decision.status, verdict.decision.reason) == (400, "decision.path_not_normal")


@pytest.mark.parametrize("target", ["/open/x", "/open/%61b", "/open/a%3bb", "/open/x/?q=a/../b"])
async def test_a_path_that_only_differs_in_escapes_is_judged(
    open_state: GatewayState, target: str
) -> None:
    verdict = await decide(open_state, original(target, []))
    assert verdict.allowed, verdict.decision


async def test_headers_the_inline_gateway_strips_are_named_for_removal(
    open_state: GatewayState,
) -> None:
    """A GET judged as a GET must not reach the upstream as a DELETE (method override), nor
    with a client-chosen client address, in any spelling an upstream reads as the name."""
    headers = [
        ("x-api-key", KEY),
        ("x-http-method-override", "DELETE"),
        ("x_http_method_override", "DELETE"),
        ("x-original-url", "/admin"),
        ("true-client-ip", "203.0.113.9"),
        ("accept", "application/json"),
    ]
    verdict = await decide(open_state, original("/items/1", headers))
    assert verdict.allowed
    assert verdict.remove_headers == [
        "true-client-ip",
        "x-api-key",
        "x-http-method-override",
        "x-original-url",
        "x_http_method_override",
    ]


async def test_a_clients_own_consumer_header_is_named_for_removal_when_dijk_sets_none(
    open_state: GatewayState,
) -> None:
    spoofed = [("x-dijk-consumer", "alice"), ("x-dijk-scopes", "items:write")]
    verdict = await decide(open_state, original("/open/x", spoofed))
    assert verdict.allowed
    assert verdict.remove_headers == ["x-dijk-consumer", "x-dijk-scopes"]
    # On a route that identifies the caller Dijk's own values replace them; a '_' spelling
    # would reach the upstream beside them, so it goes.
    verdict = await decide(
        open_state, original("/items", [("x-api-key", KEY), ("x_dijk_consumer", "root")])
    )
    assert ("x-dijk-consumer", "alice") in verdict.upstream_headers
    assert verdict.remove_headers == ["x-api-key", "x_dijk_consumer"]


async def test_a_partial_body_is_refused_where_the_route_inspects_bodies(
    state: GatewayState,
) -> None:
    """Envoy with allow_partial_message sends the first max_request_bytes only and forwards
    the rest unjudged: the cut-off prefix of a form with an injection after it is clean."""
    headers = [("x-api-key", KEY), ("content-type", "application/x-www-form-urlencoded")]
    whole = b"a=" + b"x" * 100 + b"&b=1%27%20UNION%20SELECT%20password%20FROM%20users--"
    verdict = await decide(state, original("/items", headers, method="POST", body=whole))
    assert verdict.decision is not None
    assert verdict.decision.reason == "waf.sqli"
    cut = whole[:60]
    verdict = await decide(
        state, original("/items", headers, method="POST", body=cut, body_partial=True)
    )
    assert verdict.decision is not None
    assert (verdict.decision.status, verdict.decision.reason) == (413, "decision.partial_body")
    verdict = await decide(state, original("/items", headers, method="POST", body=cut))
    assert verdict.allowed  # the same bytes, whole: nothing to refuse


def test_envoys_partial_body_mark_and_a_short_body_make_a_grpc_question_partial(
    state: GatewayState,
) -> None:
    from envoy_data_plane.envoy.config.core.v3 import Address, SocketAddress
    from envoy_data_plane.envoy.service.auth.v3 import (
        AttributeContext,
        AttributeContextHttpRequest,
        AttributeContextPeer,
        AttributeContextRequest,
        CheckRequest,
    )

    from dijk.proxy.decision_grpc import _original

    def question(method: str, headers: dict[str, str], size: int) -> CheckRequest:
        peer = AttributeContextPeer(
            address=Address(socket_address=SocketAddress(address="198.51.100.4"))
        )
        http = AttributeContextHttpRequest(
            method=method, path="/items", headers=headers, raw_body=b"a=1", size=size
        )
        return CheckRequest(
            attributes=AttributeContext(source=peer, request=AttributeContextRequest(http=http))
        )

    engine = DecisionEngine(Gateway(state))
    whole = _original(question("POST", {}, 3), engine)
    assert isinstance(whole, Original)
    assert (whole.body_partial, whole.content_length) == (False, 3)
    longer = _original(question("POST", {}, 5000), engine)
    assert isinstance(longer, Original)
    assert (longer.body_partial, longer.content_length) == (True, 5000)
    marked = _original(question("POST", {"x-envoy-auth-partial-body": "true"}, -1), engine)
    assert isinstance(marked, Original)
    assert marked.body_partial
    refused = _original(question("GET /x", {}, -1), engine)
    assert not isinstance(refused, Original)
    assert refused.reason == "decision.invalid_method"
