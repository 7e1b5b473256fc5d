"""Compiled rules: what is counted together, what the headers say, what is never stored."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from dijk.config.models import RateLimitRule
from dijk.pipeline.context import Identity, RequestContext
from dijk.ratelimit.algorithms import Outcome
from dijk.ratelimit.backend import MemoryLimiter
from dijk.ratelimit.errors import StorageErrorPolicy
from dijk.ratelimit.policy import client_network, compile_rule, needs_identity, response_headers
from dijk.stages.ratelimit import PreAuthRateLimitStage, refusal


def context(ip: str = "192.0.2.1", **headers: str) -> RequestContext:
    return RequestContext(
        "id",
        "GET",
        "/",
        "",
        [(k.replace("_", "-"), v) for k, v in headers.items()],
        ip,
        1,
        "http",
        "1.1",
    )


def test_ipv6_clients_are_counted_per_64_by_default() -> None:
    a = client_network("2001:db8:1:2:aaaa::1", 32, 64)
    b = client_network("2001:db8:1:2:ffff::9", 32, 64)
    c = client_network("2001:db8:1:3::1", 32, 64)
    assert a == b == "2001:db8:1:2::/64"
    assert a != c
    assert client_network("2001:db8:1:2::1", 32, 128) == "2001:db8:1:2::1"
    assert client_network("2001:db8:1:2::1", 32, 48) == "2001:db8:1::/48"


def test_ipv4_mapped_addresses_count_as_ipv4() -> None:
    assert client_network("::ffff:192.0.2.7", 32, 64) == "192.0.2.7"
    assert client_network("192.0.2.7", 24, 64) == "192.0.2.0/24"


def test_rule_keys_and_policy_items() -> None:
    rule = compile_rule(RateLimitRule(key="ip+header:X-Tenant", limit=7, per_s=30), "p:", "r:x")
    assert rule.policy_item == '"ip+header:x-tenant-30s";q=7;w=30'
    bucket = rule.bucket(context(x_tenant="secret-tenant"))
    assert bucket.key.startswith("p:r:x:")
    assert "secret-tenant" not in bucket.key  # free-form values are digested
    assert "192.0.2.1" in bucket.key
    assert not needs_identity(rule.key)
    assert needs_identity("ip+consumer")
    assert needs_identity("claim:sub")


def test_consumer_and_claim_parts_read_the_identity() -> None:
    rule = compile_rule(RateLimitRule(key="consumer+claim:tenant", limit=1, per_s=1), "", "r:x")
    ctx = context()
    ctx.identity = Identity("alpha", "jwt", claims={"tenant": "t1"})
    other = context()
    other.identity = Identity("alpha", "jwt", claims={"tenant": "t2"})
    assert rule.bucket(ctx).key != rule.bucket(other).key
    assert "alpha" in rule.bucket(ctx).key


def test_a_tokens_own_subject_is_hashed_in_storage_keys() -> None:
    # "jwt:<sub>" may be an e-mail address or user id; it must not be readable in Redis.
    rule = compile_rule(RateLimitRule(key="consumer", limit=1, per_s=1), "", "r:x")
    ctx = context()
    ctx.identity = Identity("jwt:ann@example.org", "jwt")
    other = context()
    other.identity = Identity("jwt:bob@example.org", "jwt")
    key = rule.bucket(ctx).key
    assert "ann" not in key
    assert "example.org" not in key
    assert key != rule.bucket(other).key


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"key": "nope", "limit": 1, "per_s": 1}, "unknown key part"),
        ({"limit": 1}, "exactly one of"),
        ({"limit": 1, "per_s": 1, "per": "day"}, "exactly one of"),
        ({"limit": 1, "per_s": 1, "burst": 3}, "only applies to algorithm: gcra"),
        ({"limit": 1, "per": "day", "algorithm": "gcra"}, "cannot use gcra"),
        ({"key": "ip+ip", "limit": 1, "per_s": 1}, "listed twice"),
    ],
)
def test_invalid_rules_are_clear_config_errors(fields: dict[str, object], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        RateLimitRule.model_validate(fields)


def test_refusal_names_a_quota_and_waits_for_the_longest_rule() -> None:
    window = compile_rule(RateLimitRule(limit=10, per_s=60), "", "r")
    day = compile_rule(RateLimitRule(limit=1000, per="day"), "", "r")
    decision = refusal(
        [window, day],
        [Outcome(False, 0, 5000, 30_000), Outcome(False, 0, 3_600_000, 3_600_000)],
    )
    assert decision.status == 429
    assert decision.reason == "ratelimit.quota_exceeded"
    assert ("Retry-After", "3600") in decision.headers
    headers = dict(response_headers([window], [Outcome(True, 9, 59_500, 0)]))
    assert headers["ratelimit"] == '"consumer-60s";r=9;t=60'


def test_storage_errors_are_logged_once_per_interval(caplog: pytest.LogCaptureFixture) -> None:
    policy = StorageErrorPolicy("deny", 60, "test")
    decisions = [policy.handle(RuntimeError("down"), "r") for _ in range(5)]
    assert all(d is not None and d.reason == "ratelimit.storage_unavailable" for d in decisions)
    assert policy._suppressed == 4
    assert StorageErrorPolicy("allow", 60, "test").handle(RuntimeError("x"), "r") is None


async def test_stage_sets_headers_on_every_admitted_answer() -> None:
    limiter = MemoryLimiter()
    rule = compile_rule(RateLimitRule(key="ip", limit=2, per_s=60), "", "r:x")
    stage = PreAuthRateLimitStage([rule], limiter, StorageErrorPolicy("deny", 10, "t"))
    ctx = context()
    assert await stage.request_headers(ctx) is None
    assert ("ratelimit-policy", '"ip-60s";q=2;w=60') in ctx.extra_response_headers
    assert await stage.request_headers(context()) is None
    refused = await stage.request_headers(context())
    assert refused is not None
    assert refused.reason == "ratelimit.exceeded"
    assert await stage.request_headers(context(ip="192.0.2.2")) is None
    await stage.close()
