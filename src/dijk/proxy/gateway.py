"""The data plane handler: one request through routing, the pipeline and the upstream.

This module is the only place that knows both the HTTP server (:mod:`dijk.proxy.http1`)
and the pipeline; stages see a :class:`~dijk.pipeline.RequestContext` only, so the server
or upstream client can change without touching a stage.
"""

from __future__ import annotations

import os
import re
import time
from typing import TYPE_CHECKING

import structlog

from dijk import metrics
from dijk.pipeline.context import RequestContext
from dijk.pipeline.decision import Decision
from dijk.pipeline.problem import PROBLEM_CONTENT_TYPE, render_problem
from dijk.proxy.headers import downstream_response_headers, upstream_request_headers
from dijk.proxy.http1 import (
    ClientDisconnected,
    ProtocolFault,
    Request,
    ResponseWriter,
    http_date,
)
from dijk.proxy.upstream import ResponseHead, UpstreamConnection, UpstreamError, UpstreamPool
from dijk.routing.normalise import PathError, normalise_path

if TYPE_CHECKING:
    from dijk.proxy.state import GatewayState, RoutePlan

log = structlog.get_logger("dijk.gateway")
access_log = structlog.get_logger("dijk.access")

_REQUEST_ID = re.compile(r"[A-Za-z0-9._:\-]{1,128}")


def new_request_id() -> str:
    return os.urandom(16).hex()


def request_id_from(headers: list[tuple[str, str]]) -> str:
    """Keep a well-formed incoming X-Request-Id (so traces join up), else make one."""
    for name, value in headers:
        if name == "x-request-id":
            if len(value) <= 128 and _REQUEST_ID.fullmatch(value):
                return value
            break
    return new_request_id()


def problem_response(
    decision: Decision, request_id: str
) -> tuple[int, list[tuple[str, str]], bytes]:
    body = render_problem(
        decision.status, decision.reason, decision.detail, request_id, decision.extra or None
    )
    headers = [
        ("content-type", PROBLEM_CONTENT_TYPE),
        ("cache-control", "no-store"),
        ("x-content-type-options", "nosniff"),
        ("date", http_date()),
        ("x-request-id", request_id),
    ]
    headers.extend((name.lower(), value) for name, value in decision.headers)
    return decision.status, headers, body


class Gateway:
    """Holds the current :class:`GatewayState`; reload swaps it atomically."""

    def __init__(self, state: GatewayState) -> None:
        self.state = state
        self.in_flight = 0

    # ---- server hooks ---------------------------------------------------------------------
    def protocol_error(
        self, fault: ProtocolFault, request: Request | None
    ) -> tuple[list[tuple[str, str]], bytes]:
        request_id = request_id_from(request.headers) if request is not None else new_request_id()
        _, headers, body = problem_response(
            Decision.deny(fault.status, fault.reason, fault.detail), request_id
        )
        return headers, body

    async def handle(self, request: Request, writer: ResponseWriter) -> None:
        state = self.state  # one snapshot for the whole request, even across a reload
        request_id = request_id_from(request.headers)
        ctx = RequestContext(
            request_id=request_id,
            method=request.method,
            path=request.path,
            query=request.query,
            headers=request.headers,
            client_ip=state.trusted_proxies.client_address(
                request.client_ip, _joined(request.headers, "x-forwarded-for")
            )
            if state.trusted_proxies
            else request.client_ip,
            client_port=request.client_port,
            scheme=request.scheme,
            http_version=request.http_version,
            raw_target=request.target,
            tls=request.tls,
            content_length=request.content_length,
        )
        ctx.started = request.received_at
        plan: RoutePlan | None = None
        metrics.IN_FLIGHT.inc()
        self.in_flight += 1
        try:
            decision = self._route(state, request, ctx)
            if decision is None:
                assert ctx.route is not None
                plan = ctx.route.plan
                assert plan is not None
                decision = await self._through(state, plan, request, ctx, writer)
            if decision is not None:
                ctx.decision = decision
                self._send_problem(writer, ctx, decision)
        except ClientDisconnected:
            ctx.response_status = 499
            ctx.annotations["client_disconnected"] = True
            raise
        finally:
            metrics.IN_FLIGHT.dec()
            self.in_flight -= 1
            ctx.bytes_out = writer.bytes_out
            if not ctx.response_status:
                ctx.response_status = writer.status
            pipeline = plan.pipeline if plan is not None else state.default_pipeline
            await pipeline.log(ctx)
            elapsed = time.perf_counter() - ctx.started
            metrics.observe_request(ctx.route_name, ctx.response_status, ctx.reason, elapsed)
            if state.access_log:
                access_log.info(
                    "request",
                    request_id=request_id,
                    method=ctx.method,
                    path=ctx.path,
                    route=ctx.route_name,
                    status=ctx.response_status,
                    reason=ctx.reason,
                    client_ip=ctx.client_ip,
                    duration_ms=round(elapsed * 1000, 3),
                )

    # ---- steps ------------------------------------------------------------------------------
    def _route(self, state: GatewayState, request: Request, ctx: RequestContext) -> Decision | None:
        target_path = request.path
        if not target_path.startswith("/"):
            found = _absolute_form_path(request)
            if isinstance(found, Decision):
                return found
            target_path = found
        try:
            ctx.path = normalise_path(target_path)
        except PathError as exc:
            return Decision.deny(400, exc.reason, str(exc))
        match = state.router.match(ctx.method, ctx.path)
        if match.route is None:
            if match.allowed:
                allow = ", ".join(sorted(match.allowed))
                return Decision.deny(
                    405,
                    "route.method_not_allowed",
                    f"The method {ctx.method} is not allowed here.",
                    (("Allow", allow),),
                )
            return Decision.deny(404, "route.not_found", "No route matches this path.")
        ctx.route = match.route
        ctx.path_params = match.params
        return None

    async def _through(
        self,
        state: GatewayState,
        plan: RoutePlan,
        request: Request,
        ctx: RequestContext,
        writer: ResponseWriter,
    ) -> Decision | None:
        pipeline = plan.pipeline
        decision = await pipeline.request_headers(ctx)
        if decision is not None:
            return decision
        body: bytes | None = None
        # Chunked bodies are always read whole (up to the body limit) before anything is
        # forwarded: their framing is only known to be valid at the last chunk, and the
        # upstream then gets a Content-Length body, never chunked framing it could parse
        # differently. Content-Length bodies stream unless a stage asks for the body.
        if request.has_body and (request.chunked or pipeline.wants_request_body(ctx)):
            try:
                body = await request.body.read_all(state.limits.max_body_bytes)
            except ProtocolFault as fault:
                writer.close_after()
                return Decision.deny(fault.status, fault.reason, fault.detail)
            ctx.body = body
            ctx.bytes_in = len(body)
            decision = await pipeline.request_body(ctx)
            if decision is not None:
                return decision
        try:
            return await self._forward(state, plan, request, ctx, writer, body)
        except UpstreamError as exc:
            if writer.head_sent:
                writer.close_after()
                ctx.annotations["upstream_error"] = exc.reason
                log.warning(
                    "upstream_failed_mid_response", reason=exc.reason, request_id=ctx.request_id
                )
                raise ClientDisconnected from None
            retry = (("Retry-After", "5"),) if exc.status in (502, 503) else ()
            return Decision.deny(exc.status, exc.reason, exc.detail, retry)
        except ProtocolFault as fault:
            writer.close_after()
            if writer.head_sent:
                raise ClientDisconnected from None
            return Decision.deny(fault.status, fault.reason, fault.detail)

    async def _forward(
        self,
        state: GatewayState,
        plan: RoutePlan,
        request: Request,
        ctx: RequestContext,
        writer: ResponseWriter,
        body: bytes | None,
    ) -> Decision | None:
        target = plan.upstream
        path = ctx.path
        if plan.strip_prefix and (
            path == plan.strip_prefix or path.startswith(plan.strip_prefix + "/")
        ):
            path = path[len(plan.strip_prefix) :] or "/"
        client_host = _first(ctx.headers, "host") or ""
        host = target.host_header(client_host)
        headers = upstream_request_headers(
            ctx.headers,
            peer_ip=request.client_ip,
            peer_trusted=bool(state.trusted_proxies)
            and state.trusted_proxies.trusts(request.client_ip),
            scheme=ctx.scheme,
            host=client_host,
            request_id=ctx.request_id,
        )
        headers.extend(ctx.extra_upstream_headers)
        streaming_body = request.has_body and body is None
        if body is not None:
            framing = f"content-length: {len(body)}\r\n"
        elif not request.has_body:
            framing = ""
        elif request.content_length is not None:
            if request.content_length > state.limits.max_body_bytes:
                writer.close_after()
                return _too_large(state.limits.max_body_bytes)
            framing = f"content-length: {request.content_length}\r\n"
        else:
            framing = "transfer-encoding: chunked\r\n"
        target_line = path + ("?" + ctx.query if ctx.query else "")
        lines = [f"{ctx.method} {target_line} HTTP/1.1\r\nhost: {host}\r\n"]
        lines.extend(f"{name}: {value}\r\n" for name, value in headers)
        lines.append(framing)
        lines.append("\r\n")
        head_bytes = "".join(lines).encode("latin-1")

        started = time.perf_counter()
        connection = await self._send(target.pool, head_bytes, body, ctx, streaming_body)
        try:
            if streaming_body:
                await self._stream_request_body(
                    request, connection, state.limits.max_body_bytes, ctx
                )
            head = await connection.head()
            return await self._respond(state, plan, ctx, writer, connection, head, started)
        except BaseException:
            connection.close()
            raise

    async def _send(
        self,
        pool: UpstreamPool,
        head_bytes: bytes,
        body: bytes | None,
        ctx: RequestContext,
        streaming: bool,
    ) -> UpstreamConnection:
        payload = head_bytes + body if body else head_bytes
        head_only = ctx.method == "HEAD"
        connection = await pool.acquire()
        connection.begin(payload, head_only)
        if streaming or not connection.reused:
            return connection
        # A reused keep-alive connection may have been closed by the upstream just now:
        # wait for the head, and retry once on a fresh connection if nothing came back.
        try:
            await connection.head()
        except UpstreamError as exc:
            if not exc.retryable:
                raise
            connection = await pool.connect()
            connection.begin(payload, head_only)
        return connection

    async def _stream_request_body(
        self, request: Request, connection: UpstreamConnection, limit: int, ctx: RequestContext
    ) -> None:
        chunked = request.content_length is None
        size = 0
        while True:
            chunk = await request.body.read()
            if not chunk:
                break
            size += len(chunk)
            if size > limit:
                raise ProtocolFault(
                    413,
                    "limits.body_too_large",
                    f"The request body is larger than the limit of {limit} bytes.",
                )
            connection.write(b"%x\r\n%b\r\n" % (len(chunk), chunk) if chunked else chunk)
        if chunked:
            connection.write(b"0\r\n\r\n")
        ctx.bytes_in = size

    async def _respond(
        self,
        state: GatewayState,
        plan: RoutePlan,
        ctx: RequestContext,
        writer: ResponseWriter,
        connection: UpstreamConnection,
        head: ResponseHead,
        started: float,
    ) -> Decision | None:
        pipeline = plan.pipeline
        ctx.response_status = head.status
        ctx.response_headers = downstream_response_headers(head.headers, ctx.request_id)
        decision = await pipeline.response_headers(ctx)
        if decision is not None:
            return decision
        if pipeline.wants_response_body(ctx):
            buffered = await _buffer_response(connection, state.limits.max_response_buffer_bytes)
            ctx.upstream_seconds = time.perf_counter() - started
            plan.pool_release(connection)
            ctx.response_body = buffered
            decision = await pipeline.response_body(ctx)
            if decision is not None:
                return decision
            ctx.response_headers.extend(ctx.extra_response_headers)
            writer.send(ctx.response_status, ctx.response_headers, ctx.response_body or b"")
            metrics.observe_upstream(ctx.route_name, ctx.upstream_seconds)
            return None
        ctx.response_headers.extend(ctx.extra_response_headers)
        length = head.content_length if not head.chunked else None
        writer.write_head(head.status, ctx.response_headers, length)
        relay = _Relay(writer, connection)
        connection.set_sink(relay.sink)
        if not connection.finished:
            writer.flush()  # the body is still coming: do not hold the head back
        await connection.done()
        if relay.disconnected:
            raise ClientDisconnected
        writer.end()
        ctx.upstream_seconds = time.perf_counter() - started
        metrics.observe_upstream(ctx.route_name, ctx.upstream_seconds)
        plan.pool_release(connection)
        return None

    def _send_problem(
        self, writer: ResponseWriter, ctx: RequestContext, decision: Decision
    ) -> None:
        status, headers, body = problem_response(decision, ctx.request_id)
        headers.extend(ctx.extra_response_headers)
        ctx.response_status = status
        if writer.head_sent:
            writer.close_after()
            return
        writer.send(status, headers, body)


class _Relay:
    """Streams upstream body chunks to the client with back-pressure both ways."""

    __slots__ = ("connection", "disconnected", "paused", "writer")

    def __init__(self, writer: ResponseWriter, connection: UpstreamConnection) -> None:
        self.writer = writer
        self.connection = connection
        self.disconnected = False
        self.paused = False

    def sink(self, chunk: bytes) -> None:
        if self.disconnected:
            return
        try:
            self.writer.write(chunk)
        except ClientDisconnected:
            self.disconnected = True
            self.connection.close()
            return
        if self.writer.paused and not self.paused:
            self.paused = True
            self.connection.pause_reading()
            self.writer.on_resume(self._resume)

    def _resume(self) -> None:
        self.paused = False
        self.connection.resume_reading()


async def _buffer_response(connection: UpstreamConnection, limit: int) -> bytes:
    parts: list[bytes] = []
    size = 0
    overflow = False

    def sink(chunk: bytes) -> None:
        nonlocal size, overflow
        size += len(chunk)
        if size > limit:
            overflow = True
            connection.close()
            return
        parts.append(chunk)

    connection.set_sink(sink)
    try:
        await connection.done()
    except UpstreamError:
        if not overflow:
            raise
    if overflow:
        raise UpstreamError(
            502,
            "upstream.response_too_large",
            f"The upstream response is larger than the inspection limit of {limit} bytes.",
        )
    return b"".join(parts)


def _too_large(limit: int) -> Decision:
    return Decision.deny(
        413, "limits.body_too_large", f"The request body is larger than the limit of {limit} bytes."
    )


def _first(headers: list[tuple[str, str]], name: str) -> str | None:
    for key, value in headers:
        if key == name:
            return value
    return None


def _joined(headers: list[tuple[str, str]], name: str) -> str | None:
    """All field lines of a list header as one value (RFC 9110 §5.3), or ``None``.

    X-Forwarded-For must be read whole: a trusted proxy may add its own line after the
    client's, and only the right-most entries are the proxy's word.
    """
    values = [value for key, value in headers if key == name]
    return ", ".join(values) if values else None


def _absolute_form_path(request: Request) -> str | Decision:
    """Accept an absolute-form target only when it names the same host as ``Host``."""
    target = request.path
    lowered = target[:8].lower()
    if not (lowered.startswith("http://") or lowered.startswith("https://")):
        return Decision.deny(400, "http.invalid_target", "The request target must be a path.")
    rest = target.split("://", 1)[1]
    authority, slash, path = rest.partition("/")
    host = _first(request.headers, "host") or ""
    if not authority or authority.lower() != host.lower() or "@" in authority:
        return Decision.deny(
            400,
            "http.absolute_form_host",
            "An absolute-form request target must name the same host as the Host header.",
        )
    return slash + path if slash else "/"
