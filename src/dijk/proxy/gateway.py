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
from dijk.proxy.headers import (
    connection_conflict,
    downstream_response_headers,
    upstream_request_headers,
)
from dijk.proxy.http1 import (
    NO_BODY,
    ClientDisconnected,
    ProtocolFault,
    Request,
    ResponseWriter,
    http_date,
)
from dijk.proxy.upstream import ResponseHead, UpstreamConnection, UpstreamError
from dijk.routing.normalise import PathError, normalise_path
from dijk.stages.audit import path_template_of
from dijk.stages.audit import unavailable as audit_unavailable
from dijk.stages.load_shed import body_arrived

if TYPE_CHECKING:
    from dijk.audit.record import Outcome
    from dijk.config.models import LimitsConfig
    from dijk.proxy.state import GatewayState, RoutePlan
    from dijk.stages.audit import AuditResources

log = structlog.get_logger("dijk.gateway")
access_log = structlog.get_logger("dijk.access")

_REQUEST_ID = re.compile(r"[A-Za-z0-9._:\-]{1,128}")
# ctx.annotations key: a client's well-formed X-Request-Id that was not adopted.
CLIENT_REQUEST_ID = "client_request_id"


_IDS_PER_READ = 128


class _RequestIds:
    """Request ids of 128 random bits each, from the OS CSPRNG, read 128 ids at a time.

    Every id is its own 16 bytes of ``os.urandom`` output (no counter, no shared prefix),
    so one id says nothing about another; batching only saves a system call per request.
    A forked child starts a fresh batch, so parent and child never hand out the same id.
    """

    __slots__ = ("_hex", "_next")

    def __init__(self) -> None:
        self._hex = ""
        self._next = 0

    def take(self) -> str:
        start = self._next
        if start >= len(self._hex):
            self._hex = os.urandom(16 * _IDS_PER_READ).hex()
            start = 0
        self._next = start + 32
        return self._hex[start : start + 32]

    def reset(self) -> None:
        self._hex = ""
        self._next = 0


_request_ids = _RequestIds()
os.register_at_fork(after_in_child=_request_ids.reset)


def new_request_id() -> str:
    """32 lower-case hex digits (128 random bits), unguessable from any other id."""
    return _request_ids.take()


def incoming_request_id(headers: list[tuple[str, str]]) -> str | None:
    """The first X-Request-Id if it is well-formed (safe to log and echo), else ``None``."""
    for name, value in headers:
        if name == "x-request-id":
            if len(value) <= 128 and _REQUEST_ID.fullmatch(value):
                return value
            break
    return None


def request_id_from(headers: list[tuple[str, str]], trusted: bool) -> str:
    """The request's id: a well-formed incoming X-Request-Id only from a trusted proxy (so
    traces join up across the proxies in front), else a fresh one.

    A client's own id is never taken: it would let any caller choose the id under which
    its request is logged, audited and passed upstream (collide with another request's,
    or replay a known one). The gateway records a client's well-formed id beside its own
    as ``client_request_id`` (``ctx.annotations``, the access log).
    """
    if trusted:
        found = incoming_request_id(headers)
        if found is not None:
            return found
    return new_request_id()


def _client_request_id(ctx: RequestContext) -> dict[str, str]:
    """The access log's ``client_request_id`` field, only when a client sent one."""
    found = ctx.annotations.get(CLIENT_REQUEST_ID)
    return {CLIENT_REQUEST_ID: found} if found else {}


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


class Uploads:
    """Requests whose body is still arriving, in total and per client address.

    A slow or stalled upload holds a connection, a task and buffers for as long as the
    client keeps it going; it must not also hold a slot of the requests-in-flight budget
    that ready requests need. So uploads have caps of their own (``limits.max_uploads``,
    ``limits.max_uploads_per_ip``, by the client address after ``trusted_proxies``), and
    an upload leaves this count the moment its last byte arrives (or it fails).
    """

    __slots__ = ("by_ip", "total")

    def __init__(self) -> None:
        self.total = 0
        self.by_ip: dict[str, int] = {}

    def admit(self, ip: str, limits: LimitsConfig) -> Decision | None:
        current = self.by_ip.get(ip, 0)
        per_ip = limits.max_uploads_per_ip
        if per_ip and current >= per_ip:
            return Decision.deny(
                429,
                "limits.too_many_uploads",
                f"Too many request bodies in progress from this address (at most {per_ip}).",
                _RETRY_SOON,
            )
        if self.total >= limits.max_uploads:
            return Decision.deny(
                503,
                "overload.too_many_uploads",
                "The gateway is receiving as many request bodies as it may; retry later.",
                _RETRY_SOON,
            )
        self.total += 1
        self.by_ip[ip] = current + 1
        metrics.UPLOADS.value = self.total
        return None

    def release(self, ip: str) -> None:
        self.total -= 1
        metrics.UPLOADS.value = self.total
        current = self.by_ip.get(ip, 0) - 1
        if current > 0:
            self.by_ip[ip] = current
        else:
            self.by_ip.pop(ip, None)


_RETRY_SOON = (("Retry-After", "1"),)


class Gateway:
    """Holds the current :class:`GatewayState`; reload swaps it atomically."""

    def __init__(self, state: GatewayState) -> None:
        self.state = state
        self.in_flight = 0
        self.uploads = Uploads()  # per process: a reload keeps the count

    # ---- server hooks ---------------------------------------------------------------------
    def protocol_error(
        self, fault: ProtocolFault, request: Request | None, client_ip: str = ""
    ) -> tuple[list[tuple[str, str]], bytes]:
        """The problem document for a refusal made by the HTTP server itself.

        ``request`` is None when the server refused a request no handler saw (malformed,
        smuggling, 408, 431, 501, too many connections): that refusal is audited here, as
        every request gets one record. With a request, ``handle`` crashed after seeing it
        and its log phase has recorded it already.
        """
        request_id = (
            request_id_from(request.headers, self.trusts_peer(request.client_ip))
            if request is not None
            else new_request_id()
        )
        _, headers, body = problem_response(
            Decision.deny(fault.status, fault.reason, fault.detail, fault.headers), request_id
        )
        if request is None:
            audit = self.state.resources.audit
            if audit is not None:
                audit.refused(fault.status, fault.reason, request_id, client_ip, len(body))
        return headers, body

    def trusts_peer(self, peer: str) -> bool:
        """Whether the socket peer is one of ``trusted_proxies``."""
        proxies = self.state.trusted_proxies
        return proxies.configured and proxies.trusts(peer)

    async def handle(self, request: Request, writer: ResponseWriter) -> None:
        state = self.state  # one snapshot for the whole request, even across a reload
        peer_trusted = state.trusted_proxies.configured and state.trusted_proxies.trusts(
            request.client_ip
        )
        request_id = request_id_from(request.headers, peer_trusted)
        ctx = RequestContext(
            request_id=request_id,
            method=request.method,
            path=request.path,
            query=request.query,
            headers=request.headers,
            client_ip=state.trusted_proxies.client_address(
                request.client_ip, _joined(request.headers, "x-forwarded-for")
            )
            if state.trusted_proxies.configured
            else request.client_ip,
            client_port=request.client_port,
            scheme=request.scheme,
            http_version=request.http_version,
            raw_target=request.target,
            tls=request.tls,
            content_length=request.content_length,
            started=request.received_at,
        )
        if not peer_trusted:
            client_id = incoming_request_id(request.headers)
            if client_id is not None:
                ctx.annotations[CLIENT_REQUEST_ID] = client_id
        plan: RoutePlan | None = None
        metrics.IN_FLIGHT.inc()
        self.in_flight += 1
        try:
            decision = self._route(state, request, ctx)
            if decision is None and not request.body.complete:
                decision = self._admit_upload(state, request, ctx)
            if decision is None:
                assert ctx.route is not None
                plan = ctx.route.plan
                assert plan is not None
                decision = await self._through(state, plan, request, ctx, writer)
            elif state.default_pipeline.in_request_headers:
                # No route: the default stages (the abuse guard) may refuse first, so a
                # blocked client gets the same answer on every path, existing or not.
                decision = await state.default_pipeline.request_headers(ctx) or decision
            if decision is not None:
                ctx.decision = decision
                if state.release_gate is not None:
                    await self._release_problem(state.release_gate, writer, ctx, decision)
                else:
                    self._send_problem(writer, ctx, decision)
        except ClientDisconnected:
            ctx.response_status = 499
            ctx.annotations["client_disconnected"] = True
            raise
        finally:
            if request.body is not NO_BODY:
                request.body.discard()  # its memory and upload slot, whatever happened
            metrics.IN_FLIGHT.dec()
            self.in_flight -= 1
            ctx.bytes_out = writer.bytes_out
            if not ctx.response_status:
                ctx.response_status = writer.status
            pipeline = plan.pipeline if plan is not None else state.default_pipeline
            if pipeline.in_log:
                await pipeline.log(ctx)
            elapsed = time.perf_counter() - ctx.started
            metrics.observe_request(ctx.route_name, ctx.response_status, ctx.reason, elapsed)
            if state.access_log:
                # The route's path template, never the raw path (ids, e-mail addresses and
                # attack payloads travel in paths): the same value the audit record holds.
                access_log.info(
                    "request",
                    request_id=request_id,
                    method=ctx.method,
                    path_template=path_template_of(ctx) or "-",
                    route=ctx.route_name or "-",
                    status=ctx.response_status,
                    reason=ctx.reason,
                    client_ip=ctx.client_ip,
                    duration_ms=round(elapsed * 1000, 3),
                    **_client_request_id(ctx),
                )

    # ---- steps ------------------------------------------------------------------------------
    def _admit_upload(
        self, state: GatewayState, request: Request, ctx: RequestContext
    ) -> Decision | None:
        """Count a request whose body is still arriving as an upload, or refuse it."""
        uploads = self.uploads
        ip = ctx.client_ip
        refusal = uploads.admit(ip, state.limits)
        if refusal is not None:
            return refusal
        ctx.body_pending = True

        def done(complete: bool) -> None:
            uploads.release(ip)
            ctx.body_pending = False
            if complete:
                body_arrived(ctx)  # now a ready request: load shedding counts it

        request.body.on_done = done
        return None

    def _route(self, state: GatewayState, request: Request, ctx: RequestContext) -> Decision | None:
        listed = connection_conflict(ctx.headers, state.connection_protected)
        if listed is not None:
            # ``listed`` is one of a fixed set of names (or content-*, a token): safe to show.
            return Decision.deny(
                400,
                "http.connection_option",
                f"The Connection header must not name the end-to-end field {listed}.",
            )
        target_path = request.path
        if not target_path.startswith("/"):
            found = _absolute_form_path(request)
            if isinstance(found, Decision):
                return found
            target_path = found
        return match_route(state, ctx, target_path)

    async def _through(
        self,
        state: GatewayState,
        plan: RoutePlan,
        request: Request,
        ctx: RequestContext,
        writer: ResponseWriter,
    ) -> Decision | None:
        pipeline = plan.pipeline
        if pipeline.in_request_headers:
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
                return Decision.deny(fault.status, fault.reason, fault.detail, fault.headers)
            ctx.body = body
            ctx.bytes_in = len(body)
            if pipeline.in_request_body:
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
            return Decision.deny(fault.status, fault.reason, fault.detail, fault.headers)

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
            peer_trusted=state.trusted_proxies.configured
            and state.trusted_proxies.trusts(request.client_ip),
            scheme=ctx.scheme,
            host=client_host,
            request_id=ctx.request_id,
            dropped=plan.request_dropped,
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
        query = ctx.query
        fields = "".join([f"{name}: {value}\r\n" for name, value in headers])
        head_bytes = (
            f"{ctx.method} {path}{'?' if query else ''}{query} HTTP/1.1\r\n"
            f"host: {host}\r\n{fields}{framing}\r\n"
        ).encode("latin-1")
        payload = head_bytes + body if body else head_bytes
        head_only = ctx.method == "HEAD"
        balancer = target.balancer  # picks a healthy target (proxy/balancer.py)

        started = ctx.upstream_started = time.perf_counter()
        connection = balancer.take_idle() or await balancer.connect(ctx)
        connection.begin(payload, head_only)
        try:
            if streaming_body:
                await self._stream_request_body(
                    request, connection, state.limits.max_body_bytes, ctx
                )
                head = await connection.head()
            elif connection.reused:
                # A reused keep-alive connection may have been closed by the upstream just
                # now: retry once on a fresh connection if nothing at all came back.
                try:
                    head = await connection.head()
                except UpstreamError as exc:
                    if not exc.retryable:
                        raise
                    connection = await connection.pool.connect()  # the same target
                    connection.begin(payload, head_only)
                    head = await connection.head()
            else:
                head = await connection.head()
            return await self._respond(state, plan, ctx, writer, connection, head, started)
        except BaseException:
            connection.close()
            raise

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
            if connection.writing_paused:
                # A slow upstream: take no more from the client until it has read this
                # (the body's buffer then fills and the client is held back), rather than
                # piling the body up in the upstream connection's buffer.
                await connection.drain()
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
        ctx.response_length = head.content_length if not head.chunked else None
        ctx.response_headers = downstream_response_headers(
            head.headers, ctx.request_id, plan.response_dropped
        )
        if pipeline.in_response_headers:
            decision = await pipeline.response_headers(ctx)
            if decision is not None:
                return decision
        if pipeline.in_response_body and pipeline.wants_response_body(ctx):
            buffered = await _buffer_response(connection, state.limits.max_response_buffer_bytes)
            ctx.upstream_seconds = time.perf_counter() - started
            plan.pool_release(connection)
            ctx.response_body = buffered
            decision = await pipeline.response_body(ctx)
            if decision is not None:
                return decision
            ctx.response_headers.extend(ctx.extra_response_headers)
            gate = state.release_gate
            if gate is not None:
                body = ctx.response_body or b""
                ctx.bytes_out = _body_bytes(ctx.method, ctx.response_status, body)
                refusal = await gate.commit(ctx, self._refused_answer(ctx))
                if refusal is not None:
                    return refusal
            writer.send(ctx.response_status, ctx.response_headers, ctx.response_body or b"")
            metrics.observe_upstream(ctx.route_name, ctx.upstream_seconds)
            return None
        ctx.response_headers.extend(ctx.extra_response_headers)
        length = head.content_length if not head.chunked else None
        writer.write_head(head.status, ctx.response_headers, length)
        gate = state.release_gate
        if gate is None and connection.completed:
            # The whole body came with the head (small responses): write it at once, head
            # and body in one send, without setting up the streaming relay.
            for chunk in connection.take_pending():
                writer.write(chunk)  # ClientDisconnected closes the upstream (_forward)
            writer.end()
            ctx.upstream_seconds = time.perf_counter() - started
            metrics.observe_upstream(ctx.route_name, ctx.upstream_seconds)
            plan.pool_release(connection)
            return None
        relay = _Relay(writer, connection) if gate is None else _HoldingRelay(writer, connection)
        connection.set_sink(relay.sink)
        if not connection.finished and gate is None:
            writer.flush()  # the body is still coming: do not hold the head back
        await connection.done()
        if relay.disconnected:
            raise ClientDisconnected
        ctx.upstream_seconds = time.perf_counter() - started
        if gate is not None:
            refusal = await self._release_stream(gate, writer, ctx, relay)
            if refusal is not None:
                plan.pool_release(connection)  # read to its end: reusable
                metrics.observe_upstream(ctx.route_name, ctx.upstream_seconds)
                return refusal
        writer.end()
        metrics.observe_upstream(ctx.route_name, ctx.upstream_seconds)
        plan.pool_release(connection)
        return None

    async def _release_problem(
        self,
        gate: AuditResources,
        writer: ResponseWriter,
        ctx: RequestContext,
        decision: Decision,
    ) -> None:
        """Strict audit durability: a problem document goes out only after its record is
        committed; if the commit fails under ``on_sink_error: deny`` the answer is 503."""
        if not writer.head_sent:
            status, _, body = problem_response(decision, ctx.request_id)
            ctx.response_status = status
            ctx.bytes_out = _body_bytes(ctx.method, status, body)
            refusal = await gate.commit(ctx, self._refused_answer(ctx))
            if refusal is not None:
                decision = refusal
        self._send_problem(writer, ctx, decision)

    async def _release_stream(
        self, gate: AuditResources, writer: ResponseWriter, ctx: RequestContext, relay: _Relay
    ) -> Decision | None:
        """Strict audit durability for a streamed response: its last chunk and its end
        wait for the commit, so the client cannot receive it complete before that.

        If the commit is refused (``on_sink_error: deny``) while nothing of the response
        has reached the connection yet (its head is still corked), the head is withdrawn
        and the refusal returned: the client gets a clean 503. Otherwise the response is
        cut short, and its record says ``abort``.
        """
        assert isinstance(relay, _HoldingRelay)
        ctx.bytes_out = writer.bytes_out + len(relay.held)
        on_wire = writer.on_wire
        if_refused: tuple[Outcome, int, int] = (
            ("abort", ctx.response_status, writer.bytes_out)
            if on_wire
            else self._refused_answer(ctx)
        )
        refusal = await gate.commit(ctx, if_refused)
        if refusal is not None:
            if not on_wire:
                writer.retract_head()
                return refusal
            writer.close_after()  # never completed: the client sees a cut response
            raise ClientDisconnected
        relay.release()
        if relay.disconnected:
            raise ClientDisconnected
        return None

    @staticmethod
    def _refused_answer(ctx: RequestContext) -> tuple[Outcome, int, int]:
        """What the client gets if strict durability cannot commit: 503 ``audit.unavailable``."""
        status, _, body = problem_response(audit_unavailable(), ctx.request_id)
        return "deny", status, _body_bytes(ctx.method, status, body)

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


def match_route(state: GatewayState, ctx: RequestContext, target_path: str) -> Decision | None:
    """Normalise ``target_path`` once into ``ctx.path`` and match the route on it: sets
    ``ctx.route``, or answers 400 (bad path), 403 (global network rules), 405 or 404.
    Shared by the inline gateway and the decision service (``proxy/decision.py``)."""
    try:
        ctx.path = normalise_path(target_path)
    except PathError as exc:
        return Decision.deny(400, exc.reason, str(exc))
    match = state.router.match(ctx.method, ctx.path)
    if match.route is None:
        if state.global_network is not None:
            refused = state.global_network.decide(ctx.client_ip)
            if refused is not None:
                return refused  # the same 403 as on routes: no map of what exists
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


class _HoldingRelay(_Relay):
    """A relay that keeps the newest chunk back until :meth:`release` (strict audit)."""

    __slots__ = ("held",)

    def __init__(self, writer: ResponseWriter, connection: UpstreamConnection) -> None:
        super().__init__(writer, connection)
        self.held = b""

    def sink(self, chunk: bytes) -> None:
        held, self.held = self.held, chunk
        if held:
            super().sink(held)

    def release(self) -> None:
        held, self.held = self.held, b""
        if held:
            super().sink(held)


def _body_bytes(method: str, status: int, body: bytes) -> int:
    """Body bytes a complete response puts on the wire (none for HEAD, 1xx, 204, 304)."""
    if method == "HEAD" or status in (204, 304) or status < 200:
        return 0
    return len(body)


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
