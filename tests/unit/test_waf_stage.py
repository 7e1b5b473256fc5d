"""The attack-detection stage in process: phases, scoring, decisions, audit findings."""

from __future__ import annotations

import json
import typing
from pathlib import Path
from urllib.parse import urlencode

import orjson
import pydantic
import pytest

from dijk.config.models import RouteConfig, WafCategory, WafConfig
from dijk.detect.engine import compiled_patterns, pattern_sources, patterns_fingerprint
from dijk.detect.findings import RequestParts
from dijk.detect.patterns import PatternSet
from dijk.detect.rules import CATEGORIES
from dijk.pipeline.context import Identity, RequestContext
from dijk.pipeline.decision import Action, Decision
from dijk.pipeline.problem import render_problem
from dijk.stages.waf import (
    OPENAPI_CONSTRAINED_FIELDS,
    DetectorCache,
    WafStage,
    load_patterns,
)

CACHE = DetectorCache()


def stage(**settings: object) -> WafStage:
    config = WafConfig.model_validate(settings)
    return WafStage(config, CACHE.get(config))


def context(
    target: str = "/api/v1/search",
    method: str = "GET",
    headers: list[tuple[str, str]] | None = None,
    body: bytes | None = None,
    content_type: str = "",
) -> RequestContext:
    path, _, query = target.partition("?")
    all_headers = list(headers or [])
    if content_type:
        all_headers.append(("content-type", content_type))
    ctx = RequestContext(
        "rid", method, path, query, all_headers, "127.0.0.1", 1, "http", "1.1", raw_target=target
    )
    ctx.content_type = content_type
    if body is not None:
        ctx.body = body
        ctx.content_length = len(body)
    return ctx


async def run(waf: WafStage, ctx: RequestContext) -> object:
    decision = await waf.request_headers(ctx)
    if decision is not None and decision.action is Action.DENY:
        return decision
    if ctx.body is not None and waf.wants_request_body(ctx):
        body_decision = await waf.request_body(ctx)
        return body_decision or decision
    return decision


def search(q: str) -> RequestContext:
    return context("/api/v1/search?" + urlencode({"q": q}))


async def test_sql_injection_in_the_query_is_denied_with_403_and_its_rules() -> None:
    ctx = search("1' UNION SELECT username, password FROM users--")
    decision = await stage().request_headers(ctx)
    assert decision is not None
    assert decision.denies
    assert (decision.status, decision.reason) == (403, "waf.sqli")
    rules = decision.extra["rules"]
    assert isinstance(rules, list)
    assert "sqli-union-select" in rules
    assert {finding.field for finding in ctx.findings} == {"q"}
    assert all(len(finding.snippet) <= 64 for finding in ctx.findings)
    problem = json.loads(
        render_problem(decision.status, decision.reason, decision.detail, "rid", decision.extra)
    )
    assert problem["type"] == "https://dijk.dev/problems/waf.sqli"
    assert "sqli-union-select" in problem["rules"]
    assert "UNION" not in problem["detail"]


@pytest.mark.parametrize(
    "text", ["O'Brien", "select the best plan for me", "drop me a line", "Rock & Roll <3"]
)
async def test_ordinary_searches_pass(text: str) -> None:
    assert await stage().request_headers(search(text)) is None


async def test_monitor_mode_records_but_does_not_deny() -> None:
    ctx = search("<img src=x onerror=alert(1)>")
    decision = await stage(mode="monitor").request_headers(ctx)
    assert decision is not None
    assert decision.action is Action.MONITOR
    assert decision.reason == "waf.xss"
    assert ctx.findings


async def test_sql_injection_in_a_json_field_is_denied_in_the_body_phase() -> None:
    body = json.dumps({"name": "Anne", "note": "x' OR '1'='1' --"}).encode()
    ctx = context("/api/v1/accounts", "POST", body=body, content_type="application/json")
    waf = stage()
    assert await waf.request_headers(ctx) is None
    assert waf.wants_request_body(ctx)
    decision = await waf.request_body(ctx)
    assert decision is not None
    assert decision.reason == "waf.sqli"
    assert {finding.field for finding in ctx.findings} == {"$.note"}


@pytest.mark.parametrize(
    ("content_type", "length", "wanted"),
    [
        ("application/json", 10, True),
        ("application/problem+json; charset=utf-8", 10, True),
        ("application/x-www-form-urlencoded", 10, True),
        ("multipart/form-data; boundary=x", 10, True),
        ("application/xml", 10, True),
        ("application/graphql", 10, True),
        ("text/plain", 10, True),
        ("application/zip", 10, True),
        ("application/octet-stream", 10, True),
        ("", 10, True),
        ("image/png", 10, False),
        ("video/mp4", 10, False),
        ("application/pdf", 10, False),
        ("application/json", 0, False),
    ],
)
def test_with_opaque_bodies_streamed_the_body_is_asked_for_only_when_it_can_be_inspected(
    content_type: str, length: int, wanted: bool
) -> None:
    ctx = context("/upload", "POST", content_type=content_type)
    ctx.content_length = length
    assert stage(opaque_bodies="stream").wants_request_body(ctx) is wanted
    # By default every body is read: an upstream may parse JSON labelled image/png.
    assert stage().wants_request_body(ctx) is (length > 0)


async def test_findings_in_headers_and_body_add_up_to_one_request_score() -> None:
    target = "/api/v1/accounts?" + urlencode({"q": "1 UNION SELECT 1"})
    body = json.dumps({"note": "<script>alert(1)</script>"}).encode()
    detector = CACHE.get(WafConfig())
    head_score = detector.inspect_head(RequestParts.from_target("POST", target)).score
    body_score = detector.inspect_body(
        RequestParts(content_type="application/json", body=body)
    ).score
    # A threshold that neither part reaches alone, but the request does.
    waf = stage(threshold=max(head_score, body_score) + 1)
    ctx = context(target, "POST", body=body, content_type="application/json")
    assert await waf.request_headers(ctx) is None
    decision = await waf.request_body(ctx)
    assert decision is not None
    assert decision.denies
    assert decision.extra["score"] == head_score + body_score


async def test_openapi_constrained_fields_are_skipped_and_free_text_is_not() -> None:
    attack = "1 UNION SELECT password FROM users"
    waf = stage()
    for field, denied in (("amount", False), ("note", True)):
        body = json.dumps({field: attack}).encode()
        ctx = context("/api/v1/accounts", "POST", body=body, content_type="application/json")
        ctx.annotations[OPENAPI_CONSTRAINED_FIELDS] = frozenset({("json", "$.amount")})
        decision = await run(waf, ctx)
        assert (decision is not None) is denied, field


async def test_constrained_fields_match_any_array_index() -> None:
    body = json.dumps({"items": [{"id": "1 UNION SELECT 1,2"}]}).encode()
    ctx = context("/api/v1/accounts", "POST", body=body, content_type="application/json")
    ctx.annotations[OPENAPI_CONSTRAINED_FIELDS] = frozenset({("json", "$.items[*].id")})
    assert await run(stage(), ctx) is None


async def test_limits_findings_on_constrained_fields_are_kept() -> None:
    """Too many values in a constrained array: the detector stopped there and never saw
    the rest of the body (here, the SQL in $.nested.note). That is not about the field's
    value, so the constraint must not hide it."""
    body = orjson.dumps(
        {"nested": {"note": "1' UNION SELECT password FROM users--"}, "tags": ["red"] * 20_001}
    )
    ctx = context("/api/v1/orders", "POST", body=body, content_type="application/json")
    ctx.annotations[OPENAPI_CONSTRAINED_FIELDS] = frozenset({("json", "$.tags[*]")})
    decision = await run(stage(), ctx)
    assert isinstance(decision, Decision)
    assert decision.denies
    assert decision.reason == "waf.limits"


async def test_route_exclusions_apply_per_field_and_category() -> None:
    waf = stage(exclude=[{"field": "$.description", "categories": ["sqli"]}])
    sqli = json.dumps({"description": "1 UNION SELECT password FROM users"}).encode()
    ctx = context("/api/v1/accounts", "POST", body=sqli, content_type="application/json")
    assert await run(waf, ctx) is None
    xss = json.dumps({"description": "<script>alert(1)</script>"}).encode()
    ctx = context("/api/v1/accounts", "POST", body=xss, content_type="application/json")
    decision = await run(waf, ctx)
    assert decision is not None
    assert decision.reason == "waf.xss"


async def test_attacker_chosen_keys_are_escaped_in_audit_findings() -> None:
    body = json.dumps({'<b>"x"\u2028': "1 UNION SELECT password FROM users"}).encode()
    ctx = context("/api/v1/accounts", "POST", body=body, content_type="application/json")
    await run(stage(), ctx)
    assert ctx.findings
    for finding in ctx.findings:
        assert finding.field.isascii()
        assert "<" not in finding.field
        assert '"' not in finding.field


async def test_encoded_traversal_in_the_raw_path_is_seen_as_sent() -> None:
    ctx = context("/api/v1/accounts/..%252f..%252fetc%252fpasswd")
    ctx.path = "/api/v1/accounts/..%252f..%252fetc%252fpasswd"
    decision = await stage().request_headers(ctx)
    assert decision is not None
    assert decision.reason == "waf.path_traversal"


async def test_graphql_variables_are_inspected() -> None:
    body = json.dumps(
        {
            "query": "query Find($n: String!) { accounts(name: $n) { id } }",
            "variables": {"n": "x' OR 1=1 --"},
        }
    ).encode()
    ctx = context("/graphql", "POST", body=body, content_type="application/json")
    decision = await run(stage(), ctx)
    assert decision is not None
    assert decision.reason == "waf.sqli"


async def test_graphql_limits_are_configurable() -> None:
    query = "{ a: accounts { id } b: accounts { id } c: accounts { id } }"
    body = json.dumps({"query": query}).encode()
    strict = stage(graphql={"max_aliases": 2})
    ctx = context("/graphql", "POST", body=body, content_type="application/json")
    decision = await run(strict, ctx)
    assert decision is not None
    assert decision.reason == "waf.graphql_abuse"
    ctx = context("/graphql", "POST", body=body, content_type="application/json")
    assert await run(stage(), ctx) is None


async def test_verdict_is_stateless() -> None:
    waf = stage()
    for _ in range(3):
        assert await waf.request_headers(search("1' UNION SELECT 1--")) is not None
        assert await waf.request_headers(search("drop me a line")) is None


def test_detectors_are_shared_per_distinct_setting() -> None:
    cache = DetectorCache()
    first = cache.get(WafConfig(paranoia=1))
    assert cache.get(WafConfig(paranoia=1, mode="monitor")) is first
    assert cache.get(WafConfig(paranoia=2)) is not first
    assert len(cache) == 2


def test_compiled_patterns_are_cached_on_disk_and_reloaded(tmp_path: Path) -> None:
    load_patterns(tmp_path)  # already compiled in this process: nothing to write
    patterns = compiled_patterns()
    path = tmp_path / f"hyperscan-{patterns_fingerprint()}.db"
    path.write_bytes(patterns.serialize())
    reloaded = PatternSet(pattern_sources(), path.read_bytes())
    assert reloaded.loaded
    texts = ["1 union select 1", "hello"]
    assert reloaded.scan(texts) == patterns.scan(texts)


def test_a_damaged_pattern_cache_is_compiled_over_not_used() -> None:
    broken = PatternSet([(1, "abc")], b"not a hyperscan database")
    assert not broken.loaded
    assert broken.scan(["xabcx"]) == [(1, 0)]


def test_waf_config_is_validated() -> None:
    with pytest.raises(pydantic.ValidationError):
        WafConfig.model_validate({"paranoia": 5})
    with pytest.raises(pydantic.ValidationError):
        WafConfig.model_validate({"exclude": [{"field": "$.a", "categories": ["nonsense"]}]})
    with pytest.raises(pydantic.ValidationError):
        WafConfig.model_validate({"mode": "block", "surprise": 1})
    route = RouteConfig.model_validate(
        {"name": "r", "match": {"path": "/"}, "upstream": "u", "waf": {"mode": "monitor"}}
    )
    assert route.waf is not None
    assert route.waf.paranoia == 1


def test_config_categories_are_the_detector_categories() -> None:
    assert set(typing.get_args(WafCategory)) == set(CATEGORIES)


def test_problem_document_carries_rules_and_escapes_nothing_raw() -> None:
    document = orjson.loads(render_problem(403, "waf.xss", "d", "rid", {"rules": ["a"]}))
    assert document["rules"] == ["a"]


async def test_an_undecodable_content_coding_is_refused_with_415_or_recorded_in_monitor() -> None:
    headers = [("content-encoding", "br")]
    ctx = context(
        "/api/v1/notes", "POST", headers=headers, body=b"\x8b\x02\x80{}", content_type="text/plain"
    )
    decision = await stage().request_headers(ctx)
    assert decision is not None
    assert decision.denies
    assert (decision.status, decision.reason) == (415, "waf.unsupported_encoding")
    monitored = context(
        "/api/v1/notes", "POST", headers=headers, body=b"x", content_type="text/plain"
    )
    assert await stage(mode="monitor").request_headers(monitored) is None
    assert [d.reason for d in monitored.monitored] == ["waf.unsupported_encoding"]
    # a coding the detector undoes, and a route that opts out, go on
    gzipped = context(
        "/api/v1/notes", "POST", headers=[("content-encoding", "gzip, deflate")], body=b"x"
    )
    assert await stage().request_headers(gzipped) is None
    opted_out = context(
        "/api/v1/notes", "POST", headers=headers, body=b"x", content_type="text/plain"
    )
    assert await stage(unknown_encoding="inspect").request_headers(opted_out) is None


# -- operator controls: rule-id, route-wide and per-consumer exclusions -----------------

ACCOUNT_ATTACK = json.dumps({"note": "x' UNION SELECT password FROM users--"}).encode()


async def test_a_rule_id_exclusion_drops_only_that_rule() -> None:
    body = json.dumps({"note": "1' UNION SELECT 1--"}).encode()
    ctx = context("/api/v1/accounts", "POST", body=body, content_type="application/json")
    plain = await run(stage(), ctx)
    assert isinstance(plain, Decision)
    all_rules = set(typing.cast(list[str], plain.extra["rules"]))
    assert "sqli-union-select" in all_rules
    waf = stage(exclude=[{"field": "$.note", "rules": ["sqli-union-select"]}])
    ctx = context("/api/v1/accounts", "POST", body=body, content_type="application/json")
    decision = await run(waf, ctx)
    assert isinstance(decision, Decision)
    assert set(typing.cast(list[str], decision.extra["rules"])) == all_rules - {"sqli-union-select"}


async def test_a_route_wide_exclusion_needs_no_field() -> None:
    waf = stage(exclude=[{"categories": ["sqli"]}])
    ctx = context("/api/v1/accounts", "POST", body=ACCOUNT_ATTACK, content_type="application/json")
    assert await run(waf, ctx) is None
    xss = json.dumps({"note": "<script>alert(document.cookie)</script>"}).encode()
    ctx = context("/api/v1/accounts", "POST", body=xss, content_type="application/json")
    assert isinstance(await run(waf, ctx), Decision)


async def test_a_consumer_exclusion_applies_to_that_consumer_only() -> None:
    waf = stage(exclude=[{"field": "$.note", "categories": ["sqli"], "consumers": ["etl-job"]}])
    for consumer, refused in (("etl-job", False), ("mobile-app", True), (None, True)):
        ctx = context(
            "/api/v1/accounts", "POST", body=ACCOUNT_ATTACK, content_type="application/json"
        )
        if consumer is not None:
            ctx.identity = Identity(consumer=consumer, method="api_key")
        decision = await run(waf, ctx)
        assert (decision is not None) is refused, consumer


@pytest.mark.parametrize(
    ("exclusion", "message"),
    [
        ({"field": "$.a", "rules": ["no-such-rule"]}, "unknown rule id"),
        ({"location": "json"}, "needs a field, rules or categories"),
    ],
)
def test_bad_exclusions_are_configuration_errors(
    exclusion: dict[str, object], message: str
) -> None:
    with pytest.raises(pydantic.ValidationError, match=message):
        WafConfig.model_validate({"exclude": [exclusion]})


def test_an_exclusion_for_an_unknown_consumer_is_a_configuration_error() -> None:
    from dijk.config import ConfigError, load_config_text

    text = """\
version: 1
upstreams: {app: {url: "http://127.0.0.1:9"}}
routes:
  - name: api
    match: {path_prefix: /}
    upstream: app
    waf:
      exclude:
        - {field: $.query, categories: [sqli], consumers: [etl-job, "jwt:reporting"]}
"""
    with pytest.raises(ConfigError, match="consumer 'etl-job' is not defined"):
        load_config_text(text, "dijk.yaml")
