"""The per-request context that stages read and annotate."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import orjson

if TYPE_CHECKING:
    from dijk.pipeline.decision import Decision
    from dijk.routing.router import CompiledRoute


@dataclass(slots=True)
class Identity:
    """Who is calling, as established by an authentication stage.

    ``credential_id`` is a stable, hashed identifier of the credential used (never the
    credential itself), for rate limiting and the audit log.
    """

    consumer: str
    method: str
    scopes: frozenset[str] = frozenset()
    credential_id: str = ""
    groups: frozenset[str] = frozenset()
    claims: dict[str, Any] = field(default_factory=dict)


@dataclass(slots=True)
class RequestContext:
    """Everything known about one request as it passes through the pipeline.

    Header names are lower-case; values are ``str`` decoded as latin-1 (what arrived on the
    wire, byte for byte). ``path`` is the normalised path used both for routing and for the
    upstream request.
    """

    request_id: str
    method: str
    path: str
    query: str
    headers: list[tuple[str, str]]
    client_ip: str
    client_port: int
    scheme: str
    http_version: str
    raw_target: str = ""
    route: CompiledRoute | None = None
    path_params: dict[str, str] = field(default_factory=dict)
    identity: Identity | None = None
    tls: dict[str, Any] | None = None
    started: float = field(default_factory=time.perf_counter)
    body: bytes | None = None
    # The body with its Content-Encoding undone (strictly, within the body limit) by the
    # client limits stage; None when it had no coding. Stages read ``inspected_body``; the
    # upstream receives ``body``, as the client sent it.
    decoded_body: bytes | None = None
    content_type: str = ""
    content_length: int | None = None
    # True while the request body is still arriving (an upload in progress): load shedding
    # counts such a request apart from the requests that are ready.
    body_pending: bool = False
    decision: Decision | None = None
    monitored: list[Decision] = field(default_factory=list)
    findings: list[Any] = field(default_factory=list)
    annotations: dict[str, Any] = field(default_factory=dict)
    extra_upstream_headers: list[tuple[str, str]] = field(default_factory=list)
    response_status: int = 0
    # The request's spans (dijk.tracing.RequestTrace) when tracing is on; None otherwise.
    trace: Any = None
    response_headers: list[tuple[str, str]] = field(default_factory=list)
    response_body: bytes | None = None
    # The upstream's Content-Length (None when chunked or absent): response_headers never
    # hold framing headers, and a stage deciding whether to buffer a body needs its size.
    response_length: int | None = None
    extra_response_headers: list[tuple[str, str]] = field(default_factory=list)
    upstream_seconds: float | None = None
    upstream_started: float | None = None  # perf_counter() when forwarding began
    bytes_in: int = 0
    bytes_out: int = 0
    fault: str | None = None
    # The inspected body parsed once (``json_body``): the bytes it was parsed from, the
    # value, and whether orjson accepted them.
    _json_source: bytes | None = field(default=None, init=False, repr=False)
    _json_value: Any = field(default=None, init=False, repr=False)
    _json_ok: bool = field(default=False, init=False, repr=False)

    def header(self, name: str) -> str | None:
        """First value of a header (``name`` must be lower-case)."""
        for key, value in self.headers:
            if key == name:
                return value
        return None

    def header_values(self, name: str) -> list[str]:
        return [value for key, value in self.headers if key == name]

    @property
    def inspected_body(self) -> bytes | None:
        """The request body as the upstream will read it: content coding undone."""
        return self.decoded_body if self.decoded_body is not None else self.body

    def json_body(self) -> tuple[Any, bool]:
        """The inspected body parsed as JSON by orjson, once for every stage that reads it:
        ``(value, True)``, or ``(None, False)`` when orjson refuses the bytes (a stage may
        then try its own, more lenient reading). The value is shared: never modify it."""
        body = self.decoded_body if self.decoded_body is not None else self.body
        if body is None:
            return None, False
        if self._json_source is not body:
            self._json_source = body
            try:
                self._json_value, self._json_ok = orjson.loads(body), True
            except orjson.JSONDecodeError:
                self._json_value, self._json_ok = None, False
        return self._json_value, self._json_ok

    @property
    def route_name(self) -> str:
        return self.route.name if self.route is not None else ""

    @property
    def reason(self) -> str:
        """The reason code recorded for metrics and the audit log."""
        if self.decision is not None:
            return self.decision.reason
        if self.monitored:
            return self.monitored[0].reason
        return ""
