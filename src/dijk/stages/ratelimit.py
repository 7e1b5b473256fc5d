"""Rate limits and quotas (priority 7000 before authentication, 5000 after it).

A route's ``rate_limit`` rules whose key is known before authentication (``ip``, ``route``,
``header:<name>``) run at 7000, so floods of bad credentials are limited before any key is
looked up; rules that need the caller (``consumer``, ``api_key``, ``claim:<name>``) and the
consumer's own limits run at 5000, after authorization. Each of the two checks is one
atomic round trip to the storage (:mod:`dijk.ratelimit.backend`) for all of its rules.

Every answer that passed a check carries ``RateLimit-Policy`` and ``RateLimit`` (IETF
httpapi rate-limit headers draft); a refusal is 429 ``ratelimit.exceeded`` or
``ratelimit.quota_exceeded`` with ``Retry-After``. A storage outage follows
``ratelimit.on_storage_error`` (:mod:`dijk.ratelimit.errors`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import ClassVar

from dijk.pipeline.context import RequestContext
from dijk.pipeline.decision import Decision
from dijk.pipeline.stage import Phase, Stage
from dijk.ratelimit.algorithms import Outcome
from dijk.ratelimit.backend import Limiter
from dijk.ratelimit.errors import StorageErrorPolicy
from dijk.ratelimit.policy import CompiledRule, policy_header, ratelimit_header
from dijk.storage import StorageUnavailable


class RateLimitStage(Stage):
    """Rules that need the authenticated caller, plus limits set on consumers."""

    name: ClassVar[str] = "ratelimit"
    priority: ClassVar[int] = 5000
    phases: ClassVar[frozenset[Phase]] = frozenset({Phase.REQUEST_HEADERS})

    def __init__(
        self,
        rules: Sequence[CompiledRule],
        limiter: Limiter,
        errors: StorageErrorPolicy,
        consumer_rules: Mapping[str, tuple[CompiledRule, ...]] | None = None,
    ) -> None:
        # (rules, preformatted RateLimit-Policy value): the route's own, and per consumer
        # with limits of its own; compiled here so a request only looks them up.
        self._plain = (tuple(rules), policy_header(rules))
        self._by_consumer = {
            consumer: (self._plain[0] + own, policy_header(self._plain[0] + own))
            for consumer, own in (consumer_rules or {}).items()
            if own
        }
        self._limiter = limiter
        self._errors = errors
        limiter.acquire()

    def rules_for(self, ctx: RequestContext) -> tuple[tuple[CompiledRule, ...], str]:
        if self._by_consumer and ctx.identity is not None:
            return self._by_consumer.get(ctx.identity.consumer, self._plain)
        return self._plain

    async def request_headers(self, ctx: RequestContext) -> Decision | None:
        rules, policy = self.rules_for(ctx)
        if not rules:
            return None
        buckets = [rule.bucket(ctx) for rule in rules]
        try:
            result = await self._limiter.hit(buckets)
        except StorageUnavailable as exc:
            return self._errors.handle(exc, ctx.request_id)
        outcomes = result.outcomes
        ctx.extra_response_headers.append(("ratelimit-policy", policy))
        ctx.extra_response_headers.append(("ratelimit", ratelimit_header(rules, outcomes)))
        if result.allowed:
            return None
        return refusal(rules, outcomes)

    async def close(self) -> None:
        await self._limiter.release()


class PreAuthRateLimitStage(RateLimitStage):
    """Rules keyed only by what the request itself shows (ip, route, headers)."""

    name: ClassVar[str] = "ratelimit_pre_auth"
    priority: ClassVar[int] = 7000


def refusal(rules: Sequence[CompiledRule], outcomes: Sequence[Outcome]) -> Decision:
    """The 429 for the rules that refused: the longest wait wins, quotas name themselves."""
    refused = [
        (rule, outcome)
        for rule, outcome in zip(rules, outcomes, strict=True)
        if not outcome.allowed
    ]
    rule, outcome = max(refused, key=lambda pair: pair[1].retry_after_ms)
    retry_after = max(1, math.ceil(outcome.retry_after_ms / 1000))
    quota = any(rule.quota for rule, _ in refused)
    if quota:
        rule = next(rule for rule, _ in refused if rule.quota)
        detail = f"Quota exhausted: {rule.describe()}. Retry after {retry_after} s."
    else:
        detail = f"Rate limit exceeded: {rule.describe()}. Retry after {retry_after} s."
    return Decision.deny(
        429,
        rule.reason,
        detail,
        (("Retry-After", str(retry_after)),),
        policy=rule.name,
        retry_after_s=retry_after,
    )
