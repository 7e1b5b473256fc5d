"""A JSON request body is parsed once per request and shared by every stage that reads it."""

from __future__ import annotations

import gzip
import json
from typing import Any

import orjson
import pytest

from dijk.config.models import LimitsConfig, WafConfig
from dijk.pipeline import context as context_module
from dijk.pipeline.context import RequestContext
from dijk.pipeline.decision import Action
from dijk.stages.client_limits import ClientLimitsStage
from dijk.stages.waf import DetectorCache, WafStage

CACHE = DetectorCache()


def make(body: bytes, encoding: str | None = None) -> RequestContext:
    headers = [("content-type", "application/json")]
    if encoding:
        headers.append(("content-encoding", encoding))
    ctx = RequestContext("rid", "POST", "/api/users", "", headers, "127.0.0.1", 1, "http", "1.1")
    ctx.content_type = "application/json"
    ctx.body = body
    ctx.content_length = len(body)
    return ctx


def test_repeated_reads_return_the_one_parsed_value() -> None:
    ctx = make(b'{"name": "alice", "tags": [1, 2]}')
    first, ok = ctx.json_body()
    assert ok
    assert first == {"name": "alice", "tags": [1, 2]}
    assert ctx.json_body()[0] is first


def test_body_orjson_refuses_is_reported_not_parsed() -> None:
    ctx = make(b'{"a": NaN}')
    assert ctx.json_body() == (None, False)


def test_decoded_body_is_what_gets_parsed() -> None:
    ctx = make(gzip.compress(b'{"a": 1}'), "gzip")
    assert ctx.json_body() == (None, False)
    ctx.decoded_body = b'{"a": 1}'
    assert ctx.json_body() == ({"a": 1}, True)
    assert ctx.inspected_body == b'{"a": 1}'


async def test_client_limits_and_waf_parse_a_json_body_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    calls: list[bytes] = []
    real = orjson.loads

    def counting(data: Any) -> Any:
        calls.append(data)
        return real(data)

    monkeypatch.setattr(context_module.orjson, "loads", counting)
    body = json.dumps({"q": "' UNION SELECT password FROM users--"}).encode()
    ctx = make(gzip.compress(body), "gzip")
    limits = ClientLimitsStage(LimitsConfig())
    assert await limits.request_body(ctx) is None
    assert ctx.decoded_body == body
    config = WafConfig.model_validate({"mode": "block"})
    waf = WafStage(config, CACHE.get(config))
    decision = await waf.request_body(ctx)
    assert decision is not None
    assert decision.action is Action.DENY
    ctx.json_body()  # a later stage (OpenAPI, privacy) gets the same parse
    assert calls == [body]
