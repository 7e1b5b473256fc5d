"""API discovery (priority 100): the inventory of endpoints, learnt from the traffic.

On a route with ``discovery: {}``, every request adds to the inventory
(:mod:`dijk.discovery`): its endpoint (method and path template: the route's OpenAPI
operation when the document declares it, else learnt from the path), status code,
authentication method and the personal-data categories the privacy stage found. The
details — query parameters, media types, body shapes — are learnt from a sample
(``discovery.sample_first``, then one in ``discovery.sample_every``), and bodies only when
they are JSON with a Content-Length up to ``discovery.max_body_bytes``: the stage asks for
a body only for those, so it never turns a streamed body into a buffered one otherwise.

The response body is taken in ``response_body``, where this stage runs before the OpenAPI
response stage (900) and privacy (1000), so it sees what the upstream sent (fields the
document does not declare included) and keeps a reference; shapes are learnt in the log
phase, after the answer went out. Requests the gateway refused are counted without their
status (the gateway's answer is not the API's). Requests that match no route are recorded
by :class:`UnmatchedDiscoveryStage` as their template only.
"""

from __future__ import annotations

import re
import time
from typing import ClassVar, Final

from dijk.config.models import RouteConfig
from dijk.discovery.inventory import Exchange
from dijk.discovery.paths import PARAM
from dijk.discovery.recorder import DiscoveryRecorder
from dijk.discovery.settings import RouteDiscovery
from dijk.pipeline.context import RequestContext
from dijk.pipeline.decision import Decision
from dijk.pipeline.stage import Phase, Stage

__all__ = ["DiscoveryStage", "UnmatchedDiscoveryStage"]

_STATE: Final = "discovery"
_RESPONSE: Final = "discovery.response"
_UNDECLARED: Final = frozenset({"openapi.unknown_path", "openapi.method_not_allowed"})
_TEMPLATE_PARAM: Final = re.compile(r"\{[^{}/]*\}")


class _Pending:
    __slots__ = ("declared", "key", "sampled", "template")

    def __init__(
        self, key: tuple[str, str], sampled: bool, template: str | None, declared: bool | None
    ) -> None:
        self.key = key
        self.sampled = sampled
        self.template = template
        self.declared = declared


def _first(headers: list[tuple[str, str]], name: str) -> str | None:
    for key, value in headers:
        if key == name:
            return value
    return None


def _json_media(value: str | None) -> bool:
    if not value:
        return False
    media = value.split(";", 1)[0].strip().lower()
    return media == "application/json" or media.endswith("+json")


class DiscoveryStage(Stage):
    name: ClassVar[str] = "discovery"
    priority: ClassVar[int] = 100
    phases: ClassVar[frozenset[Phase]] = frozenset(
        {Phase.REQUEST_HEADERS, Phase.REQUEST_BODY, Phase.RESPONSE_BODY, Phase.LOG}
    )

    def __init__(
        self, route: RouteConfig, policy: RouteDiscovery, recorder: DiscoveryRecorder
    ) -> None:
        self._route = route.name
        self._bodies = policy.bodies
        self._has_spec = route.openapi is not None and route.openapi.mode != "off"
        self._recorder = recorder
        self._max_body = recorder.settings.max_body_bytes
        recorder.retain()

    def _pending(self, ctx: RequestContext) -> _Pending:
        pending = ctx.annotations.get(_STATE)
        if isinstance(pending, _Pending):
            return pending
        template: str | None = None
        operation = ctx.annotations.get("openapi_operation")
        if isinstance(operation, str):
            declared_template = operation.partition(" ")[2]
            learnt = _TEMPLATE_PARAM.sub(PARAM, declared_template)
            if learnt.count("/") == ctx.path.count("/"):
                template = learnt  # the document's template (without a server base path)
        key = self._recorder.key(ctx.method, ctx.path, template)
        pending = _Pending(key, self._recorder.wants_sample(key), template, None)
        ctx.annotations[_STATE] = pending
        return pending

    async def request_headers(self, ctx: RequestContext) -> Decision | None:
        self._pending(ctx)
        return None

    def wants_request_body(self, ctx: RequestContext) -> bool:
        pending = ctx.annotations.get(_STATE)
        if not self._bodies or not isinstance(pending, _Pending) or not pending.sampled:
            return False
        length = ctx.content_length
        if length is None or length > self._max_body:
            return False
        return _json_media(ctx.header("content-type"))

    def wants_response_body(self, ctx: RequestContext) -> bool:
        pending = ctx.annotations.get(_STATE)
        if not self._bodies or not isinstance(pending, _Pending) or not pending.sampled:
            return False
        if ctx.method == "HEAD" or ctx.response_status in (204, 304):
            return False
        headers = ctx.response_headers
        if not _json_media(_first(headers, "content-type")) or _first(headers, "content-encoding"):
            return False
        length = ctx.response_length
        return length is not None and length <= self._max_body

    async def response_body(self, ctx: RequestContext) -> Decision | None:
        ctx.annotations[_RESPONSE] = ctx.response_body  # what the upstream sent, unmasked
        return None

    async def log(self, ctx: RequestContext) -> None:
        pending = self._pending(ctx)
        refused = ctx.decision is not None
        declared: bool | None = None
        if self._has_spec:
            reasons = {decision.reason for decision in ctx.monitored}
            if ctx.decision is not None:
                reasons.add(ctx.decision.reason)
            declared = not (reasons & _UNDECLARED)
        identity = ctx.identity
        categories = ctx.annotations.get("pii_categories")
        sampled = pending.sampled and not refused
        exchange = Exchange(
            method=ctx.method,
            path=ctx.path,
            time_us=time.time_ns() // 1000,
            status=0 if refused else ctx.response_status,
            auth=identity.method if identity is not None else "none",
            pii=tuple(categories) if isinstance(categories, list | tuple) else (),
            route=self._route,
            template=pending.template,
            declared=declared,
        )
        if sampled:
            exchange.query = ctx.query
            exchange.request_type = ctx.header("content-type") or ""
            exchange.response_type = _first(ctx.response_headers, "content-type") or ""
            if self._bodies:
                exchange.request_body = ctx.inspected_body
                response = ctx.annotations.get(_RESPONSE)
                exchange.response_body = response if isinstance(response, bytes) else None
        self._recorder.record(pending.key, exchange, sampled=sampled)

    async def close(self) -> None:
        await self._recorder.release()


class UnmatchedDiscoveryStage(Stage):
    """Requests that match no route: method and learnt template only (they got a 404)."""

    name: ClassVar[str] = "discovery"
    priority: ClassVar[int] = 100
    phases: ClassVar[frozenset[Phase]] = frozenset({Phase.LOG})

    def __init__(self, recorder: DiscoveryRecorder) -> None:
        self._recorder = recorder
        recorder.retain()

    async def log(self, ctx: RequestContext) -> None:
        if ctx.route is not None or not ctx.path.startswith("/"):
            return
        key = self._recorder.key(ctx.method, ctx.path, None)
        exchange = Exchange(
            method=ctx.method, path=ctx.path, time_us=time.time_ns() // 1000, matched=False
        )
        self._recorder.record(key, exchange, sampled=False)

    async def close(self) -> None:
        await self._recorder.release()
