"""Tracing stage: starts the request's span first (highest priority) and ends it last (log).

It replaces the client's ``traceparent``/``tracestate`` with the gateway's own (same trace
id, the gateway's span as parent) for the upstream, and binds ``trace_id`` to the request's
log lines (every line the request's task writes, the access log included). See
``dijk/tracing.py``.
"""

from __future__ import annotations

from typing import ClassVar

import structlog

from dijk.pipeline.context import RequestContext
from dijk.pipeline.decision import Decision
from dijk.pipeline.stage import Phase, Stage
from dijk.tracing import TRACE_HEADERS, Tracer


class TracingStage(Stage):
    name: ClassVar[str] = "tracing"
    priority: ClassVar[int] = 9900  # before load shedding: a shed request is traced too
    phases: ClassVar[frozenset[Phase]] = frozenset({Phase.REQUEST_HEADERS, Phase.LOG})

    def __init__(self, tracer: Tracer) -> None:
        self._tracer = tracer
        tracer.users += 1

    async def request_headers(self, ctx: RequestContext) -> Decision | None:
        trace = self._tracer.begin(ctx.headers, ctx.method, ctx.route_name or "-")
        ctx.trace = trace
        # The upstream gets the gateway's trace context in place of the client's.
        ctx.headers = [(n, v) for n, v in ctx.headers if n not in TRACE_HEADERS]
        ctx.extra_upstream_headers.extend(trace.upstream_headers())
        structlog.contextvars.bind_contextvars(trace_id=trace.trace_id)
        return None

    async def log(self, ctx: RequestContext) -> None:
        trace = ctx.trace
        if trace is None:
            return
        if ctx.upstream_started is not None and ctx.upstream_seconds is not None:
            trace.span_between(
                f"upstream {ctx.route.config.upstream if ctx.route else '-'}",
                ctx.upstream_started,
                ctx.upstream_seconds,
            )
        trace.end(ctx.response_status, ctx.reason)

    async def close(self) -> None:
        self._tracer.users -= 1
        if self._tracer.users == 0:
            import asyncio

            await asyncio.to_thread(self._tracer.shutdown)
