"""Envoy ``ext_authz`` over gRPC: ``envoy.service.auth.v3.Authorization/Check``.

The messages are Envoy's own protobuf definitions as published in the ``envoy-data-plane``
package (betterproto2 dataclasses generated from the data-plane API); the service is served
by grpclib (HTTP/2 on asyncio) on the gateway's own event loop, so a gRPC question runs
through :class:`~dijk.proxy.decision.DecisionEngine` exactly like an HTTP one.

Imported only when ``decision.grpc`` is configured: the generated modules take about a
second to import.

Answers: ``OK`` with ``ok_response`` (headers to add upstream: consumer, scopes, request
id; ``headers_to_remove`` and ``query_parameters_to_remove`` for ``hide_credentials``), or a
refusal whose ``status.message`` is the reason code and whose ``denied_response`` carries
the inline status, problem document and headers (Envoy returns them to the client). The
gRPC code follows the HTTP status: 401 → UNAUTHENTICATED, 429 → RESOURCE_EXHAUSTED,
503 → UNAVAILABLE, any other refusal → PERMISSION_DENIED.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

import orjson
import structlog
from envoy_data_plane.envoy.config.core.v3 import HeaderValue, HeaderValueOption
from envoy_data_plane.envoy.service.auth.v3 import (
    CheckRequest,
    CheckResponse,
    DeniedHttpResponse,
    OkHttpResponse,
)
from envoy_data_plane.envoy.type.v3 import HttpStatus, StatusCode
from envoy_data_plane.google.rpc import Status
from grpclib.const import Cardinality, Handler
from grpclib.const import Status as GrpcStatus
from grpclib.exceptions import GRPCError
from grpclib.server import Server, Stream

from dijk.pipeline.decision import Decision
from dijk.proxy.decision import (
    UNTRUSTED_PEER,
    DecisionEngine,
    Original,
    Verdict,
    asking_proxies,
    client_address,
    is_partial,
    is_token,
    refuse_peer,
)
from dijk.proxy.gateway import new_request_id, problem_response, request_id_from

if TYPE_CHECKING:
    from dijk.config.models import DecisionListen

log = structlog.get_logger("dijk.decision")

CHECK_METHOD = "/envoy.service.auth.v3.Authorization/Check"

# google.rpc.Code values.
OK = 0
PERMISSION_DENIED = 7
RESOURCE_EXHAUSTED = 8
UNAVAILABLE = 14
UNAUTHENTICATED = 16
INVALID_ARGUMENT = 3

_CODE_BY_STATUS = {401: UNAUTHENTICATED, 429: RESOURCE_EXHAUSTED, 503: UNAVAILABLE}
_PROTOCOL = "ext_authz_grpc"


class AuthorizationService:
    """The ``Authorization`` service: one ``Check`` per request Envoy holds."""

    def __init__(self, engine: DecisionEngine) -> None:
        self.engine = engine

    def __mapping__(self) -> dict[str, Handler]:
        return {
            CHECK_METHOD: Handler(self._check, Cardinality.UNARY_UNARY, CheckRequest, CheckResponse)
        }

    async def _check(self, stream: Stream[CheckRequest, CheckResponse]) -> None:
        peer = stream.peer.addr()
        peer_ip = str(peer[0]) if peer else ""
        state = self.engine.state
        if not asking_proxies(state.config).trusts(peer_ip):
            # Refused before a byte of the message is read: a peer that may not ask must
            # not make the gateway buffer and decode what it sends either.
            await stream.send_message(await self.check(None, peer_ip))
            return
        request = await receive_check(stream, max_message_bytes(state.limits.max_body_bytes))
        response = await self.check(request, peer_ip)
        await stream.send_message(response)

    async def check(self, request: CheckRequest | None, peer_ip: str) -> CheckResponse:
        engine = self.engine
        state = engine.state
        started = time.perf_counter()
        if not asking_proxies(state.config).trusts(peer_ip):
            _, _, body = refuse_peer(state, peer_ip, _PROTOCOL, time.perf_counter() - started)
            return _denied(UNTRUSTED_PEER, orjson.loads(body)["request_id"], PERMISSION_DENIED)
        original = _original(request, engine)
        if isinstance(original, Decision):
            return _denied(original, new_request_id(), INVALID_ARGUMENT)
        ctx = engine.begin(state, original, started)
        try:
            verdict = await engine.decide(state, ctx, original)
            response = _response(verdict)
            size = len(response.denied_response.body) if response.denied_response else 0
            if not await engine.settle(state, verdict, size):
                response = _response(verdict)
            return response
        finally:
            await engine.finish(state, ctx, _PROTOCOL)


# What a Check message may hold besides the body Envoy forwards (headers, peer certificates,
# metadata); Envoy's own header limit is 60 KiB by default.
_ATTRIBUTES_BYTES = 1 << 20


def max_message_bytes(max_body_bytes: int) -> int:
    """The largest Check message read: the body limit plus room for the attributes."""
    return max_body_bytes + _ATTRIBUTES_BYTES


async def receive_check(
    stream: Stream[CheckRequest, CheckResponse], limit: int
) -> CheckRequest | None:
    """The request message, read only if its length prefix is within ``limit``.

    grpclib (0.4.9) has no message size limit: ``recv_message`` buffers whatever length the
    5-byte prefix announces and then decodes it on the event loop, so one 200 MB message
    held the whole gateway (inline listener included) for over a minute. The prefix is read
    here first; a longer message is refused (RESOURCE_EXHAUSTED, which Envoy treats as a
    failed check: a refusal unless failure_mode_allow) without reading it.
    """
    raw = stream._stream  # grpclib's HTTP/2 stream: the only way to see the prefix first
    meta = await raw.recv_data(5)
    if not meta:
        return None
    if meta[0]:
        raise GRPCError(GrpcStatus.UNIMPLEMENTED, "compressed messages are not accepted")
    length = int.from_bytes(meta[1:5], "big")
    if length > limit:
        log.warning("decision_grpc_message_too_large", length=length, limit=limit)
        raise GRPCError(
            GrpcStatus.RESOURCE_EXHAUSTED, f"the Check message is larger than {limit} bytes"
        )
    data = await raw.recv_data(length)
    if len(data) != length:
        raise GRPCError(GrpcStatus.INVALID_ARGUMENT, "the Check message was cut short")
    return CheckRequest().parse(data)


def _original(request: CheckRequest | None, engine: DecisionEngine) -> Original | Decision:
    attributes = request.attributes if request is not None else None
    http = attributes.request.http if attributes and attributes.request else None
    if http is None or not http.method or not http.path:
        return Decision.deny(
            400,
            "decision.missing_attributes",
            "The Check request carries no HTTP request attributes (method and path).",
        )
    if not is_token(http.method.upper()):
        return Decision.deny(
            400, "decision.invalid_method", "The original method is not an HTTP token."
        )
    headers: list[tuple[str, str]] = [
        (name.lower(), value) for name, value in http.headers.items() if not name.startswith(":")
    ]
    if not headers and http.header_map is not None:
        for item in http.header_map.headers:
            value = item.value or item.raw_value.decode("latin-1")
            if not item.key.startswith(":"):
                headers.append((item.key.lower(), value))
    if http.host and not any(name == "host" for name, _ in headers):
        headers.append(("host", http.host))
    source = attributes.source if attributes is not None else None
    address = source.address if source is not None else None
    socket = address.socket_address if address is not None else None
    client = socket.address if socket is not None else ""
    if not client:
        return Decision.deny(
            400,
            "decision.missing_attributes",
            "The Check request does not name the client's address (attributes.source).",
        )
    body: bytes | None = http.raw_body or (http.body.encode("utf-8") if http.body else None)
    # http.size is the original Content-Length (-1 unknown); the body may be only its start.
    length: int | None = http.size if http.size > 0 else (len(body) if body else None)
    partial = bool(body) and (is_partial(headers) or (length or 0) > len(body or b""))
    client_ip = client_address(engine.state.trusted_proxies, client)
    if client_ip is None:
        return Decision.deny(
            400,
            "decision.invalid_client_address",
            "attributes.source does not name an IP address.",
        )
    return Original(
        method=http.method.upper(),
        target=http.path,
        headers=headers,
        client_ip=client_ip,
        # Envoy's own id for the request (its x-request-id), else a fresh one.
        request_id=_request_id(http.id) if http.id else new_request_id(),
        body=body,
        content_length=length,
        body_partial=partial,
        scheme=http.scheme or "http",
        http_version=http.protocol.removeprefix("HTTP/") or "1.1",
    )


def _request_id(envoy_id: str) -> str:
    """Envoy's own request id (``x-request-id``) when it is well-formed, else a new one."""
    return request_id_from([("x-request-id", envoy_id)], True)


def _header(name: str, value: str) -> HeaderValueOption:
    return HeaderValueOption(header=HeaderValue(key=name, value=value))


def _response(verdict: Verdict) -> CheckResponse:
    decision = verdict.decision
    if decision is None:
        return CheckResponse(
            status=Status(code=OK),
            ok_response=OkHttpResponse(
                headers=[_header(name, value) for name, value in verdict.upstream_headers],
                headers_to_remove=list(verdict.remove_headers),
                query_parameters_to_remove=list(verdict.remove_query),
            ),
        )
    return _denied(decision, verdict.ctx.request_id, _CODE_BY_STATUS.get(decision.status))


def _denied(decision: Decision, request_id: str, code: int | None) -> CheckResponse:
    status, headers, body = problem_response(decision, request_id)
    headers.append(("x-dijk-reason", decision.reason))
    return CheckResponse(
        status=Status(
            code=code if code is not None else PERMISSION_DENIED, message=decision.reason
        ),
        denied_response=DeniedHttpResponse(
            status=HttpStatus(code=_status_code(status)),
            headers=[_header(name, value) for name, value in headers if name != "date"],
            body=body.decode("utf-8"),
        ),
    )


def _status_code(status: int) -> StatusCode:
    try:
        return StatusCode(status)
    except ValueError:  # a status Envoy's enum does not name: its default refusal
        return StatusCode(403)


async def open_grpc_listener(engine: DecisionEngine, listen: DecisionListen) -> Server:
    """Serve ``Authorization/Check`` on ``listen`` (plaintext HTTP/2, like Envoy's default
    cluster to a local authorization service)."""
    server = Server([AuthorizationService(engine)])
    await server.start(None if listen.address == "*" else listen.address, listen.port)
    log.info("decision_listening", grpc=f"{listen.address}:{listen.port}", service=CHECK_METHOD)
    return server
