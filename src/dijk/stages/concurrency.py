"""Requests in flight per consumer (priority 4900, after authentication and rate limits).

A rate limit bounds how often a consumer calls; this bounds how much of the gateway and the
upstream it holds at once (slow endpoints, large downloads). The count is per gateway
instance: with N instances a consumer may hold up to N times the cap. Above the cap the
answer is 429 ``ratelimit.concurrency_exceeded`` with ``Retry-After: 1``. The slot is freed
in the log phase, which always runs (after success, denial, upstream error or disconnect).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import ClassVar

from dijk.pipeline.context import RequestContext
from dijk.pipeline.decision import Decision
from dijk.pipeline.stage import Phase, Stage

_ANNOTATION = "concurrency_slot"


class InFlight:
    """Requests in flight per consumer; shared by every route of a configuration."""

    __slots__ = ("_counts",)

    def __init__(self) -> None:
        self._counts: dict[str, int] = {}

    def get(self, consumer: str) -> int:
        return self._counts.get(consumer, 0)

    def take(self, consumer: str, cap: int) -> bool:
        current = self._counts.get(consumer, 0)
        if current >= cap:
            return False
        self._counts[consumer] = current + 1
        return True

    def give_back(self, consumer: str) -> None:
        current = self._counts.get(consumer, 0) - 1
        if current > 0:
            self._counts[consumer] = current
        else:
            self._counts.pop(consumer, None)


class ConcurrencyStage(Stage):
    name: ClassVar[str] = "concurrency"
    priority: ClassVar[int] = 4900
    phases: ClassVar[frozenset[Phase]] = frozenset({Phase.REQUEST_HEADERS, Phase.LOG})

    def __init__(self, caps: Mapping[str, int], default_cap: int, in_flight: InFlight) -> None:
        self._caps = dict(caps)
        self._default = default_cap
        self._in_flight = in_flight

    async def request_headers(self, ctx: RequestContext) -> Decision | None:
        identity = ctx.identity
        if identity is None:
            return None
        cap = self._caps.get(identity.consumer, self._default)
        if cap <= 0:
            return None
        if not self._in_flight.take(identity.consumer, cap):
            return Decision.deny(
                429,
                "ratelimit.concurrency_exceeded",
                f"Too many requests in flight for this consumer (at most {cap} at once).",
                (("Retry-After", "1"),),
                retry_after_s=1,
            )
        ctx.annotations[_ANNOTATION] = identity.consumer
        return None

    async def log(self, ctx: RequestContext) -> None:
        consumer = ctx.annotations.pop(_ANNOTATION, None)
        if isinstance(consumer, str):
            self._in_flight.give_back(consumer)
