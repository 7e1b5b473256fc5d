"""The decision service: a proxy in front (nginx, Envoy, Traefik) asks, Dijk decides.

The proxy keeps forwarding the traffic itself; for every request it first asks Dijk "may
this pass?". Dijk answers from the same compiled state as the inline gateway: the route is
matched on the same normalised path (:func:`~dijk.proxy.gateway.match_route`), the route's
``request_headers`` and ``request_body`` stages run as inline (network policy,
authentication, scopes, rate limits, login guard, OpenAPI request checks, WAF), and the log
phase writes the same audit record and metrics. Response-phase stages (OpenAPI response
checks, privacy masking) need the upstream's answer, which never passes through Dijk here:
they are inline-only.

Flavours of the question, all on one HTTP listener (``decision.listen``) by path:

- nginx ``auth_request`` (``decision.auth_request.path``): original method, target and
  client address in headers nginx sets. nginx accepts only 2xx, 401 and 403 from the
  subrequest (anything else becomes a 500), so a refusal is answered 401 or 403 with the
  real status in ``X-Dijk-Status`` and the problem document in ``X-Dijk-Problem``, which
  the example configuration (``deploy/nginx``) returns to the client.
- Traefik ``forwardAuth`` (``decision.forward_auth.path``): ``X-Forwarded-Method``,
  ``-Uri``, ``-For``; Traefik returns a refusal (status, headers, body) as it is.
- Envoy ``ext_authz`` HTTP service (``decision.ext_authz.path_prefix``): the original method
  and path under the prefix, the headers, the body with ``with_request_body``.

and Envoy ``ext_authz`` over gRPC on ``decision.grpc`` (:mod:`dijk.proxy.decision_grpc`).

Only peers in ``decision.proxies`` may ask: they are the ones whose word about the client
address (and the request id) is believed.
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

import orjson
import structlog
from prometheus_client import Counter

from dijk import metrics
from dijk.auth.credentials import hides_credentials
from dijk.pipeline.context import RequestContext
from dijk.pipeline.decision import Decision
from dijk.proxy.gateway import (
    Gateway,
    _first,
    _joined,
    match_route,
    new_request_id,
    problem_response,
    request_id_from,
)
from dijk.proxy.headers import TrustedProxies, configured_strip, hyphenated
from dijk.proxy.http1 import ProtocolFault, Request, ResponseWriter, http_date
from dijk.routing.normalise import canonical_escapes
from dijk.stages.audit import path_template_of

if TYPE_CHECKING:
    from dijk.config.models import DecisionConfig, DijkConfig, OriginalRequestHeaders
    from dijk.proxy.http1 import Handler, HttpProtocol
    from dijk.proxy.state import GatewayState, RoutePlan

log = structlog.get_logger("dijk.decision")
access_log = structlog.get_logger("dijk.access")

DECISIONS = Counter(
    "dijk_decisions",
    "Decisions answered to a proxy in front, by protocol and outcome (allow, deny).",
    ["protocol", "outcome"],
    registry=metrics.REGISTRY,
)

_COUNTERS: dict[tuple[str, bool], Any] = {}


def _decision_counter(protocol: str, allowed: bool) -> Any:
    """The labelled child of ``dijk_decisions_total``, looked up once per label pair."""
    found = _COUNTERS.get((protocol, allowed))
    if found is None:
        found = _COUNTERS[(protocol, allowed)] = DECISIONS.labels(
            protocol, "allow" if allowed else "deny"
        )
    return found


# Hop-by-hop fields of the question itself (between the proxy and Dijk), never part of the
# original request the stages judge.
_QUESTION_HOP = frozenset(
    {"connection", "keep-alive", "content-length", "transfer-encoding", "te", "upgrade"}
)
# What a stage may drop for its own response-phase needs (identity encoding for inspection):
# inline-only, so never reported to the proxy as a header to remove.
_NOT_CREDENTIALS = frozenset({"accept-encoding", "te"})


class Listener(Protocol):
    """What the server closes at stop: ``asyncio.Server`` and grpclib's server alike."""

    def close(self) -> None: ...

    async def wait_closed(self) -> None: ...


@dataclass(slots=True)
class Original:
    """The request the proxy holds, as the proxy describes it."""

    method: str
    target: str  # path and query as the client sent them
    headers: list[tuple[str, str]]  # lower-case names
    client_ip: str
    request_id: str
    body: bytes | None = None  # None: the proxy did not send it
    content_length: int | None = None
    # Envoy with allow_partial_message sends only the first max_request_bytes of a larger
    # body (and says so in x-envoy-auth-partial-body): what follows was never judged.
    body_partial: bool = False
    scheme: str = "http"
    http_version: str = "1.1"
    client_port: int = 0


@dataclass(slots=True)
class Verdict:
    """Allow (``decision`` None) or deny, and what the proxy should change upstream."""

    ctx: RequestContext
    decision: Decision | None
    upstream_headers: list[tuple[str, str]] = field(default_factory=list)
    remove_headers: list[str] = field(default_factory=list)
    remove_query: list[str] = field(default_factory=list)

    @property
    def allowed(self) -> bool:
        return self.decision is None


class DecisionEngine:
    """Runs the request phases for one question and records it like an inline request."""

    def __init__(self, gateway: Gateway) -> None:
        self.gateway = gateway

    @property
    def state(self) -> GatewayState:
        return self.gateway.state

    def begin(self, state: GatewayState, original: Original, started: float) -> RequestContext:
        """The context of the original request; counted in flight until :meth:`finish`."""
        path, _, query = original.target.partition("?")
        ctx = RequestContext(
            request_id=original.request_id,
            method=original.method,
            path=path,
            query=query,
            headers=original.headers,
            client_ip=original.client_ip,
            client_port=original.client_port,
            scheme=original.scheme,
            http_version=original.http_version,
            raw_target=original.target,
            content_length=original.content_length,
            started=started,
        )
        ctx.annotations["decision"] = True
        metrics.IN_FLIGHT.inc()
        self.gateway.in_flight += 1
        return ctx

    async def decide(self, state: GatewayState, ctx: RequestContext, original: Original) -> Verdict:
        """Route and run the request phases exactly as inline; never forwards anything."""
        decision = await self._run(state, ctx, original)
        verdict = Verdict(ctx, decision)
        if decision is None:
            api_key = state.config.auth.api_key
            query_param = api_key.query_param if api_key is not None else None
            _allow_changes(verdict, original, state.config.decision, query_param)
        return verdict

    async def _run(
        self, state: GatewayState, ctx: RequestContext, original: Original
    ) -> Decision | None:
        raw_path = ctx.path
        if not raw_path.startswith("/"):
            return Decision.deny(400, "http.invalid_target", "The request target must be a path.")
        refused = match_route(state, ctx, raw_path)
        if refused is not None:
            return refused
        if ctx.path != raw_path and ctx.path != canonical_escapes(raw_path):
            # Inline, the upstream gets the normalised path; here the proxy forwards the
            # path as the client sent it. `/admin//../open` is judged as `/open`, but an
            # upstream that keeps empty segments resolves it to `/admin/open`: only a path
            # that normalising leaves as it is can be judged for what the proxy forwards.
            return NOT_NORMAL_PATH
        assert ctx.route is not None
        plan: RoutePlan = ctx.route.plan
        pipeline = plan.pipeline
        if pipeline.in_request_headers:
            refused = await pipeline.request_headers(ctx)
            if refused is not None:
                return refused
        body = original.body
        if body:
            if len(body) > state.limits.max_body_bytes:
                limit = state.limits.max_body_bytes
                return Decision.deny(
                    413,
                    "limits.body_too_large",
                    f"The request body is larger than the limit of {limit} bytes.",
                )
            if pipeline.in_request_body and pipeline.wants_request_body(ctx):
                if original.body_partial:
                    return PARTIAL_BODY
                ctx.body = body
                ctx.bytes_in = len(body)
                return await pipeline.request_body(ctx)
        elif original.content_length:
            # The proxy did not send the body (nginx auth_request never does): body checks
            # are not possible here; the audit record says so.
            ctx.annotations["decision.body_unseen"] = True
        return None

    async def settle(self, state: GatewayState, verdict: Verdict, size: int) -> bool:
        """Note the outcome on the context; under strict audit durability commit the
        record before the answer goes out. False when a failed commit (``on_sink_error:
        deny``) turned the verdict into its 503: the caller answers that instead."""
        ctx = verdict.ctx
        decision = verdict.decision
        # The status the client gets: the proxy returns a refusal as Dijk states it, and
        # forwards an allowed request (its upstream's status is the proxy's to log).
        ctx.response_status = decision.status if decision is not None else 200
        ctx.bytes_out = size
        ctx.decision = decision
        gate = state.release_gate
        if gate is None:
            return True
        refusal = await gate.commit(ctx)
        if refusal is None:
            return True
        verdict.decision = ctx.decision = refusal
        ctx.response_status = refusal.status
        return False

    async def finish(self, state: GatewayState, ctx: RequestContext, protocol: str) -> None:
        """The log phase, metrics and access log, as the inline gateway writes them."""
        metrics.IN_FLIGHT.dec()
        self.gateway.in_flight -= 1
        plan = ctx.route.plan if ctx.route is not None else None
        pipeline = plan.pipeline if plan is not None else state.default_pipeline
        if pipeline.in_log:
            await pipeline.log(ctx)
        elapsed = time.perf_counter() - ctx.started
        metrics.observe_request(ctx.route_name, ctx.response_status, ctx.reason, elapsed)
        _decision_counter(protocol, ctx.decision is None).inc()
        if state.access_log:
            access_log.info(
                "decision",
                protocol=protocol,
                request_id=ctx.request_id,
                method=ctx.method,
                path_template=path_template_of(ctx) or "-",
                route=ctx.route_name or "-",
                status=ctx.response_status,
                reason=ctx.reason,
                client_ip=ctx.client_ip,
                duration_ms=round(elapsed * 1000, 3),
            )


_ASKING: dict[tuple[str, ...], TrustedProxies] = {}


PARTIAL_BODY = Decision.deny(
    413,
    "decision.partial_body",
    "The proxy sent only the first part of the request body (allow_partial_message); "
    "a body this route inspects is judged whole or not at all.",
)
PARTIAL_BODY_HEADER = "x-envoy-auth-partial-body"


def is_partial(headers: list[tuple[str, str]]) -> bool:
    """Whether Envoy marked the body it sent as cut at max_request_bytes."""
    value = _first(headers, PARTIAL_BODY_HEADER)
    return value is not None and value.strip().lower() == "true"


NOT_NORMAL_PATH = Decision.deny(
    400,
    "decision.path_not_normal",
    "The proxy forwards the path as sent, so only a path in normal form is judged: "
    "no '.' or '..' segments and no '//'.",
)


UNTRUSTED_PEER = Decision.deny(
    403,
    "decision.untrusted_peer",
    "Only the proxies listed in decision.proxies may ask for decisions.",
)


def refuse_peer(
    state: GatewayState, peer: str, protocol: str, elapsed: float
) -> tuple[int, list[tuple[str, str]], bytes]:
    """A question from a peer not in ``decision.proxies``: logged, counted, audited (like a
    refusal the HTTP server makes itself) and answered 403, never judged."""
    request_id = new_request_id()
    status, headers, body = problem_response(UNTRUSTED_PEER, request_id)
    log.warning("decision_untrusted_peer", peer=peer, protocol=protocol, request_id=request_id)
    audit = state.resources.audit
    if audit is not None:
        audit.refused(status, UNTRUSTED_PEER.reason, request_id, peer, len(body))
    metrics.observe_request("", status, UNTRUSTED_PEER.reason, elapsed)
    return status, headers, body


def asking_proxies(config: DijkConfig) -> TrustedProxies:
    """The peers that may ask (``decision.proxies``), one matcher per distinct list."""
    key = tuple(config.decision.proxies)
    found = _ASKING.get(key)
    if found is None:
        found = _ASKING[key] = TrustedProxies(key)
    return found


def _allow_changes(
    verdict: Verdict, original: Original, config: DecisionConfig, query_param: str | None
) -> None:
    """Headers the proxy adds upstream, and the credentials it removes (hide_credentials)."""
    ctx = verdict.ctx
    identity = ctx.identity
    headers = verdict.upstream_headers
    if identity is not None:
        headers.append((config.consumer_header, identity.consumer))
        if identity.scopes:
            headers.append((config.scopes_header, " ".join(sorted(identity.scopes))))
    headers.append(("x-request-id", ctx.request_id))
    headers.extend((name.lower(), value) for name, value in ctx.extra_upstream_headers)
    removed = _not_for_upstream(verdict, original, config)
    if hides_credentials(ctx):
        kept = {name for name, _ in ctx.headers}
        removed |= {name for name, _ in original.headers if name not in kept} - _NOT_CREDENTIALS
        if query_param and ctx.query != original.target.partition("?")[2]:
            verdict.remove_query = [query_param]
    verdict.remove_headers = sorted(removed)


def _not_for_upstream(verdict: Verdict, original: Original, config: DecisionConfig) -> set[str]:
    """Client headers the inline gateway would never forward and the proxy would: the
    route's ``strip_request_headers`` (method overrides, URL rewrites, CDN client addresses:
    ``X-HTTP-Method-Override: DELETE`` on a GET judged as a GET), and Dijk's own consumer and
    scopes headers when this answer does not set them (a client's ``X-Dijk-Consumer: admin``
    on a public route). Both in any ``_`` spelling an upstream may read as the name."""
    route = verdict.ctx.route
    assert route is not None
    strip = configured_strip(route.plan.request_dropped)
    ours = {config.consumer_header, config.scopes_header}
    answered = {name for name, _ in verdict.upstream_headers}
    found: set[str] = set()
    for name, _ in original.headers:
        canonical = hyphenated(name)
        if canonical in strip or (canonical in ours and name not in answered):
            found.add(name)
    return found


# ---- the HTTP flavours --------------------------------------------------------------------


class DecisionHandler:
    """The HTTP decision listener: nginx auth_request, Traefik forwardAuth, Envoy ext_authz."""

    def __init__(self, engine: DecisionEngine) -> None:
        self.engine = engine

    def protocol_error(
        self, fault: ProtocolFault, request: Request | None, client_ip: str = ""
    ) -> tuple[list[tuple[str, str]], bytes]:
        request_id = new_request_id()
        _, headers, body = problem_response(
            Decision.deny(fault.status, fault.reason, fault.detail), request_id
        )
        return headers, body

    async def handle(self, request: Request, writer: ResponseWriter) -> None:
        state = self.engine.state
        config = state.config.decision
        started = request.received_at
        if not asking_proxies(state.config).trusts(request.client_ip):
            self._refuse_peer(state, request, writer)
            return
        path = request.path
        if path == config.auth_request.path:
            flavour, protocol = config.auth_request, "auth_request"
        elif path == config.forward_auth.path:
            flavour, protocol = config.forward_auth, "forward_auth"
        else:
            flavour, protocol = None, "ext_authz_http"
            prefix = config.ext_authz.path_prefix
            if not (path == prefix or path.startswith(prefix + "/")):
                writer.send(
                    *problem_response(
                        Decision.deny(
                            404,
                            "decision.unknown_endpoint",
                            "This decision listener answers at "
                            f"{config.auth_request.path}, {config.forward_auth.path} "
                            f"and {prefix}/...",
                        ),
                        new_request_id(),
                    )
                )
                return
        body: bytes | None = None
        if request.has_body:
            try:
                body = await request.body.read_all(state.limits.max_body_bytes)
            except ProtocolFault as fault:
                writer.close_after()
                decision = Decision.deny(fault.status, fault.reason, fault.detail)
                writer.send(*problem_response(decision, new_request_id()))
                return
        original = (
            self._from_headers(state, request, flavour, body)
            if flavour is not None
            else self._from_ext_authz(state, request, body)
        )
        if isinstance(original, Decision):
            writer.send(*problem_response(original, new_request_id()))
            return
        engine = self.engine
        ctx = engine.begin(state, original, started)
        try:
            verdict = await engine.decide(state, ctx, original)
            status, headers, answer = self._answer(verdict, protocol)
            if not await engine.settle(state, verdict, len(answer)):
                status, headers, answer = self._answer(verdict, protocol)
            writer.send(status, headers, answer)
        finally:
            await engine.finish(state, ctx, protocol)

    # ---- reading the question ------------------------------------------------------------
    def _from_headers(
        self,
        state: GatewayState,
        request: Request,
        flavour: OriginalRequestHeaders,
        body: bytes | None,
    ) -> Original | Decision:
        method = _first(request.headers, flavour.method_header)
        target = _first(request.headers, flavour.uri_header)
        client = _joined(request.headers, flavour.client_ip_header)
        for name, value in (
            (flavour.method_header, method),
            (flavour.uri_header, target),
            (flavour.client_ip_header, client),
        ):
            if not value:
                return _missing(name)
        assert method is not None
        assert target is not None
        assert client is not None
        method = method.strip().upper()
        if not is_token(method):
            return Decision.deny(
                400, "decision.invalid_method", "The original method is not an HTTP token."
            )
        address = client_address(state.trusted_proxies, client)
        if address is None:
            return _bad_address(flavour.client_ip_header)
        dropped = {flavour.method_header, flavour.uri_header, flavour.client_ip_header}
        if flavour.content_length_header:
            dropped.add(flavour.content_length_header)
        headers = [
            (k, v) for k, v in request.headers if k not in dropped and k not in _QUESTION_HOP
        ]
        length: int | None = len(body) if body else None
        if length is None and flavour.content_length_header:
            declared = _first(request.headers, flavour.content_length_header)
            if declared:
                if not declared.isdigit() or len(declared) > 18:
                    return Decision.deny(
                        400,
                        "decision.invalid_content_length",
                        "The original Content-Length is not a number.",
                    )
                length = int(declared)
        return Original(
            method=method,
            target=target.strip(),
            headers=headers,
            client_ip=address,
            request_id=_request_id(request.headers, flavour.request_id_header),
            body=body,
            content_length=length,
            scheme=_first(request.headers, "x-forwarded-proto") or "http",
        )

    def _from_ext_authz(
        self, state: GatewayState, request: Request, body: bytes | None
    ) -> Original | Decision:
        config = state.config.decision.ext_authz
        client = _joined(request.headers, config.client_ip_header)
        if not client:
            return _missing(config.client_ip_header)
        address = client_address(state.trusted_proxies, client)
        if address is None:
            return _bad_address(config.client_ip_header)
        target = request.target[len(config.path_prefix) :] or "/"
        if not target.startswith("/"):
            target = "/" + target
        headers = [
            (k, v)
            for k, v in request.headers
            if k not in _QUESTION_HOP and k != config.client_ip_header
        ]
        return Original(
            method=request.method,
            target=target,
            headers=headers,
            client_ip=address,
            # Envoy sets x-request-id itself at the edge (and keeps a client's only when told
            # to trust it: preserve_external_request_id).
            request_id=request_id_from(request.headers, True),
            body=body,
            content_length=len(body) if body else None,
            body_partial=bool(body) and is_partial(request.headers),
            scheme=_first(request.headers, "x-forwarded-proto") or "http",
        )

    # ---- answering -------------------------------------------------------------------------
    def _answer(self, verdict: Verdict, protocol: str) -> tuple[int, list[tuple[str, str]], bytes]:
        ctx = verdict.ctx
        decision = verdict.decision
        if decision is None:
            headers = [("date", http_date()), ("cache-control", "no-store")]
            headers.extend(verdict.upstream_headers)
            if verdict.remove_headers and protocol == "ext_authz_http":
                headers.append(
                    ("x-envoy-auth-headers-to-remove", ", ".join(verdict.remove_headers))
                )
            return 200, headers, b""
        status, headers, body = problem_response(decision, ctx.request_id)
        headers.append(("x-dijk-reason", decision.reason))
        if protocol == "auth_request":
            # nginx turns anything but 2xx/401/403 into a 500: say the real status aside.
            headers.append(("x-dijk-status", str(status)))
            headers.append(("x-dijk-problem", _ascii_json(body)))
            status = 401 if status == 401 else 403
        return status, headers, body

    def _refuse_peer(self, state: GatewayState, request: Request, writer: ResponseWriter) -> None:
        status, headers, body = refuse_peer(
            state, request.client_ip, "http", time.perf_counter() - request.received_at
        )
        writer.send(status, headers, body)


def client_address(proxies: TrustedProxies, value: str) -> str | None:
    """The client in a client-address header the proxy set: the right-most entry that is
    not one of ``trusted_proxies`` (load balancers in front of the proxy; X-Forwarded-For
    lists the hops left to right, the asking proxy appends the address it saw), or the
    left-most if all are. ``None`` when an entry that must be read is not an IP address:
    the question is then refused, never answered as if the proxy (loopback) were the client."""
    entries = [entry.strip() for entry in value.split(",")]
    found: str | None = None
    for entry in reversed(entries):
        try:
            address = str(ipaddress.ip_address(entry))
        except ValueError:
            return None
        found = address
        if not proxies.trusts(address):
            break
    return found


def _request_id(headers: list[tuple[str, str]], name: str | None) -> str:
    """The proxy's own id from ``name`` when set and well-formed, else a fresh one (a
    Traefik question carries the client's headers, X-Request-Id included: never adopted)."""
    if name is None:
        return new_request_id()
    value = _first(headers, name)
    return request_id_from([("x-request-id", value)], True) if value else new_request_id()


def _bad_address(name: str) -> Decision:
    return Decision.deny(
        400,
        "decision.invalid_client_address",
        f"The {name} header the proxy sent does not name an IP address.",
    )


def _missing(name: str) -> Decision:
    return Decision.deny(
        400,
        "decision.missing_header",
        f"The proxy did not send the {name} header this decision needs.",
    )


def _ascii_json(body: bytes) -> str:
    """The problem document as one header value: JSON with every non-ASCII character
    escaped, so that it is a valid field value (orjson already escapes control characters)."""
    return json.dumps(orjson.loads(body), ensure_ascii=True, separators=(",", ":"))


_TOKEN_CHARS = frozenset(
    "!#$%&'*+-.^_`|~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
)


def is_token(value: str) -> bool:
    return 0 < len(value) <= 32 and all(char in _TOKEN_CHARS for char in value)


# ---- listeners ------------------------------------------------------------------------------


async def open_decision_listeners(
    config: DijkConfig,
    gateway: Gateway,
    protocol: Callable[[Handler], HttpProtocol],
) -> list[Listener]:
    """Open ``decision.listen`` and ``decision.grpc`` (none when not configured)."""
    decision = config.decision
    engine = DecisionEngine(gateway)
    listeners: list[Listener] = []
    loop = asyncio.get_running_loop()
    if decision.listen is not None:
        handler = DecisionHandler(engine)
        server = await loop.create_server(
            lambda: protocol(handler),
            None if decision.listen.address == "*" else decision.listen.address,
            decision.listen.port,
            backlog=2048,
            reuse_address=True,
        )
        listeners.append(server)
        log.info(
            "decision_listening",
            http=f"http://{decision.listen.address}:{decision.listen.port}",
            auth_request=decision.auth_request.path,
            forward_auth=decision.forward_auth.path,
            ext_authz=decision.ext_authz.path_prefix,
        )
    if decision.grpc is not None:
        from dijk.proxy.decision_grpc import open_grpc_listener

        try:
            listeners.append(await open_grpc_listener(engine, decision.grpc))
        except BaseException:
            for listener in listeners:
                listener.close()
            raise
    return listeners
