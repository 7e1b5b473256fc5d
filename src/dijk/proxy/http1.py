"""HTTP/1.1 server on uvloop/asyncio protocols with llhttp (httptools) in strict mode.

Why our own server and not granian: request smuggling defences need the raw message.
granian (hyper) silently drops ``Content-Length`` when ``Transfer-Encoding`` is also sent,
accepts bare-LF line endings and rewrites absolute-form targets before the application sees
them, so a gateway on top of it cannot refuse those requests (see ``bench/proxy.py`` and
ARCHITECTURE.md for the measurements). llhttp in strict mode refuses CL+TE, duplicate or
invalid ``Content-Length``, malformed chunk sizes, obs-fold and bare CR/LF; the checks
llhttp leaves to the application (Host, absolute-form, TE on HTTP/1.0) are done here.

Every refusal at this layer is a problem+json document produced by the handler's
``protocol_error`` hook, and the connection is closed afterwards.
"""

from __future__ import annotations

import asyncio
import collections
import ipaddress
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from email.utils import formatdate
from typing import TYPE_CHECKING, Protocol

import httptools
import structlog

from dijk import metrics
from dijk.proxy.deadlines import Deadlines
from dijk.proxy.headers import HEADER_NAMES, header_name

if TYPE_CHECKING:
    import ssl

log = structlog.get_logger("dijk.http")

_HIGH_WATER = 256 * 1024
_LINGER_SECONDS = 2.0
_LINGER_BYTES = 8 * 1024 * 1024
_LOW_WATER = 64 * 1024
# The client's send buffer in this process: past the high mark the transport asks us to
# stop producing (``pause_writing``), and no further pipelined request is started until it
# has drained to the low mark.
_WRITE_HIGH = 64 * 1024
_WRITE_LOW = 16 * 1024
# Framing one chunk needs besides its data and extensions: hex size and two CRLFs.
_CHUNK_FRAMING = 32
_HEAD_END = b"\r\n\r\n"
# Pause-reading reasons (a bit each): the transport reads again only when none is left.
_PAUSE_BODY = 1  # a request body's buffer is over its high-water mark
_PAUSE_BACKLOG = 2  # parsing is held back: the pipelined queue is full
_PAUSE_CLOSING = 4  # a refusal is pending; nothing more is parsed

_RETRY_SOON = (("Retry-After", "1"),)


@dataclass(frozen=True, slots=True)
class ServerLimits:
    max_header_bytes: int = 16_384
    max_headers: int = 100
    header_timeout_s: float = 10.0
    body_timeout_s: float = 30.0
    keepalive_timeout_s: float = 60.0
    min_body_rate_bytes_s: float = 0.0  # slow POST: 408 http.body_too_slow; 0 = off
    body_rate_grace_s: float = 5.0
    max_pipelined: int = 16  # requests parsed ahead of the one being answered
    max_buffered_body_bytes: int = 64 * 1024 * 1024  # all connections of a listener together


class BodyMemory:
    """Request body bytes held in memory by all connections of a listener, capped.

    Charged when the server receives body bytes, given back when the handler takes them
    to stream on or, for a body read whole, when its request ends. When the budget is
    spent a new body byte is refused (503 ``overload.body_memory``), never buffered: many
    stalled large uploads cannot grow the process, whatever the limit on one body says.
    """

    __slots__ = ("held",)

    def __init__(self) -> None:
        self.held = 0

    def take(self, size: int, limit: int) -> bool:
        if self.held + size > limit:
            return False
        self.held += size
        metrics.BODY_BUFFERED.value = self.held
        return True

    def give(self, size: int) -> None:
        self.held -= size
        metrics.BODY_BUFFERED.value = self.held


class PerIpConnections:
    """Open connections per client address, capped (``limits.max_connections_per_ip``).

    One per listener, shared by its connections. ``exempt`` says which peers are not
    counted (trusted proxies: behind a load balancer every connection comes from it).
    """

    __slots__ = ("_counts", "_exempt", "limit")

    def __init__(self, limit: int, exempt: Callable[[str], bool] | None = None) -> None:
        self.limit = limit
        self._exempt = exempt
        self._counts: dict[str, int] = {}

    def acquire(self, ip: str) -> bool | None:
        """True if counted, False if over the cap, None if this peer is not counted."""
        if self.limit <= 0 or (self._exempt is not None and self._exempt(ip)):
            return None
        current = self._counts.get(ip, 0)
        if current >= self.limit:
            return False
        self._counts[ip] = current + 1
        return True

    def release(self, ip: str) -> None:
        current = self._counts.get(ip, 0) - 1
        if current > 0:
            self._counts[ip] = current
        else:
            self._counts.pop(ip, None)


class ProtocolFault(Exception):
    """A request that cannot be served (malformed, too large, too slow)."""

    def __init__(
        self,
        status: int,
        reason: str,
        detail: str,
        headers: tuple[tuple[str, str], ...] = (),
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.reason = reason
        self.detail = detail
        self.headers = headers


class ClientDisconnected(Exception):
    """The client went away while its request was being handled."""


class Handler(Protocol):
    async def handle(self, request: Request, response: ResponseWriter) -> None: ...

    def protocol_error(
        self, fault: ProtocolFault, request: Request | None, client_ip: str = ""
    ) -> tuple[list[tuple[str, str]], bytes]:
        """Problem headers and body for a refusal; ``request`` is None when no handler saw
        it (the handler audits it then: every request gets a record)."""
        ...


class Body:
    """The request body as it arrives: read it chunk by chunk, or whole up to a limit.

    Slow POST: with ``min_rate`` set the body must keep arriving at that many bytes per
    second, measured from its first possible byte (when the head was parsed, or when
    ``100 Continue`` was sent). Every byte received buys ``1/min_rate`` seconds, and at
    most ``grace_s`` seconds of credit can be saved up: a client may start late, pause or
    fall behind by at most ``grace_s``, and an early burst does not pay for a long stall
    later. Time during which the server itself stopped reading (its own back-pressure) is
    not charged to the client.
    """

    __slots__ = (
        "_buffered",
        "_chunks",
        "_continue",
        "_deadline",
        "_due",
        "_error",
        "_grace",
        "_held",
        "_memory",
        "_min_rate",
        "_paused_at",
        "_protocol",
        "_waiter",
        "complete",
        "on_done",
        "received",
    )

    def __init__(
        self,
        protocol: HttpProtocol | None,
        expect_continue: bool,
        deadline: float,
        min_rate: float = 0.0,
        grace_s: float = 0.0,
        memory: BodyMemory | None = None,
    ) -> None:
        self._protocol = protocol
        self._min_rate = min_rate
        self._grace = grace_s
        # When the next body bytes are due (monotonic s; 0 = no rate check, or not yet).
        self._due = 0.0
        self._paused_at: float | None = None
        self._chunks: collections.deque[bytes] = collections.deque()
        self._buffered = 0
        self._held = 0  # bytes kept by read_all, still charged to the memory budget
        self._memory = memory
        self._waiter: asyncio.Future[None] | None = None
        self._error: BaseException | None = None
        self._continue = expect_continue
        self._deadline = deadline
        self.complete = False
        self.received = 0
        # Called once: with True when the last byte arrives, with False when the body
        # fails or is discarded first (the gateway counts uploads in progress with it).
        self.on_done: Callable[[bool], None] | None = None
        if not expect_continue:
            self._start_clock()

    def _start_clock(self) -> None:
        if self._min_rate > 0:
            self._due = time.monotonic() + self._grace

    # producer side (the protocol)
    def feed(self, chunk: bytes) -> None:
        size = len(chunk)
        protocol = self._protocol
        memory = self._memory
        if (
            memory is not None
            and protocol is not None
            and not memory.take(size, protocol.body_memory_limit)
        ):
            raise ProtocolFault(
                503,
                "overload.body_memory",
                "The gateway holds as much request body data as it may; retry later.",
                _RETRY_SOON,
            )
        self._chunks.append(chunk)
        self._buffered += size
        self.received += size
        if self._due:
            now = self._paused_at or time.monotonic()
            self._due = min(self._due + size / self._min_rate, now + self._grace)
        if self._buffered > _HIGH_WATER and protocol is not None:
            protocol.pause_reading()
        self._wake()

    def finish(self) -> None:
        self.complete = True
        self._done(True)
        self._wake()

    def fail(self, error: BaseException) -> None:
        if not self.complete:
            self._error = error
            self._done(False)
            self._wake()

    def _done(self, complete: bool) -> None:
        callback = self.on_done
        if callback is not None:
            self.on_done = None
            callback(complete)

    def discard(self) -> None:
        """The request is over: give back every byte still held; end the upload count."""
        self._done(False)
        self._chunks.clear()
        released = self._buffered + self._held
        self._buffered = self._held = 0
        if released and self._memory is not None:
            self._memory.give(released)

    def hold_clock(self, now: float) -> None:
        """The server stopped reading: the rate check stands still meanwhile."""
        if self._paused_at is None:
            self._paused_at = now

    def release_clock(self, now: float) -> None:
        paused_at = self._paused_at
        if paused_at is not None:
            self._paused_at = None
            if self._due:
                self._due += now - paused_at

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    # consumer side (the handler)
    async def read(self) -> bytes:
        """Next chunk, or ``b""`` when the body is complete."""
        chunk = await self._next()
        if chunk and self._memory is not None:
            self._memory.give(len(chunk))  # handed on: no longer held here
        return chunk

    async def _next(self) -> bytes:
        if self._continue:
            self._continue = False
            self._start_clock()
            if self._protocol is not None:
                self._protocol.send_continue()
        while not self._chunks:
            if self._error is not None:
                raise self._error
            if self.complete:
                return b""
            remaining, too_slow = self._wait_budget()
            if remaining <= 0:
                raise too_slow
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                await asyncio.wait_for(self._waiter, remaining)
            except TimeoutError:
                if self._chunks or self.complete or self._error is not None:
                    continue
                raise too_slow from None
            finally:
                self._waiter = None
        chunk = self._chunks.popleft()
        self._buffered -= len(chunk)
        if self._buffered < _LOW_WATER and self._protocol is not None:
            self._protocol.resume_reading()
        return chunk

    def _wait_budget(self) -> tuple[float, ProtocolFault]:
        """How long to wait for more body bytes, and the fault if none come in time.

        Two deadlines: the whole body within ``body_timeout_s``, and (slow POST) the next
        bytes by ``_due``, unless the server is holding the client back itself.
        """
        now = time.monotonic()
        remaining = self._deadline - now
        fault = ProtocolFault(408, "http.body_timeout", "The request body took too long.")
        due = self._due
        if due and self._paused_at is None and due - now < remaining:
            remaining = due - now
            fault = ProtocolFault(
                408,
                "http.body_too_slow",
                f"The request body arrived too slowly (under {self._min_rate:g} bytes/s).",
            )
        return remaining, fault

    async def read_all(self, limit: int) -> bytes:
        """The whole body, refusing (413) as soon as it exceeds ``limit`` bytes.

        Its bytes stay charged to the memory budget until :meth:`discard`.
        """
        parts: list[bytes] = []
        size = 0
        while True:
            chunk = await self._next()
            if not chunk:
                return b"".join(parts)
            self._held += len(chunk)
            size += len(chunk)
            if size > limit:
                raise ProtocolFault(
                    413,
                    "limits.body_too_large",
                    f"The request body is larger than the limit of {limit} bytes.",
                )
            parts.append(chunk)


# The body of every request that has none (no Content-Length or zero, not chunked, no
# 100-continue): complete from the start, never fed, so one instance serves them all.
NO_BODY: Body = Body(None, expect_continue=False, deadline=0.0)
NO_BODY.complete = True


@dataclass(slots=True)
class Request:
    method: str
    target: str
    path: str
    query: str
    headers: list[tuple[str, str]]
    http_version: str
    keep_alive: bool
    content_length: int | None
    chunked: bool
    client_ip: str
    client_port: int
    scheme: str
    body: Body
    received_at: float
    tls: dict[str, object] | None = None

    @property
    def has_body(self) -> bool:
        return self.chunked or bool(self.content_length)


class ResponseWriter:
    """Writes one response; knows the request's framing rules (HEAD, HTTP/1.0, keep-alive)."""

    __slots__ = (
        "_chunked",
        "_head_only",
        "_pending",
        "_protocol",
        "_request",
        "bytes_out",
        "finished",
        "head_sent",
        "keep_alive",
        "status",
    )

    def __init__(self, protocol: HttpProtocol, request: Request) -> None:
        self._protocol = protocol
        self._request = request
        self._head_only = request.method == "HEAD"
        self._pending = b""
        self._chunked = False
        self.keep_alive = request.keep_alive
        self.head_sent = False
        self.finished = False
        self.bytes_out = 0
        self.status = 0

    def close_after(self) -> None:
        """Ask for the connection to be closed after this response."""
        self.keep_alive = False

    @property
    def on_wire(self) -> bool:
        """True once a byte of this response was handed to the connection (its head is
        corked until the first body bytes, ``flush`` or ``end``)."""
        return self.head_sent and not self._pending

    def retract_head(self) -> None:
        """Forget a head that is still corked, so that another response can be sent."""
        if self.on_wire:
            raise RuntimeError("the response head is already on the wire")
        self._pending = b""
        self._chunked = False
        self._head_only = self._request.method == "HEAD"
        self.head_sent = False
        self.status = 0
        self.bytes_out = 0

    def write_head(
        self, status: int, headers: list[tuple[str, str]], content_length: int | None
    ) -> None:
        """Send the status line and headers. ``content_length=None`` means streaming."""
        if not self._request.body.complete:
            # An unread body would be parsed as the next request: close instead.
            self.keep_alive = False
        lines = [_status_line(status), *[f"{name}: {value}\r\n" for name, value in headers]]
        no_body = self._head_only or status in (204, 304) or 100 <= status < 200
        if content_length is not None and status != 204 and status >= 200:
            # RFC 9110 §8.6: never on 1xx or 204 (an upstream's wrong one is not copied;
            # a client would wait for that many bytes). HEAD and 304 keep it.
            lines.append(f"content-length: {content_length}\r\n")
        elif not no_body:
            if self._request.http_version == "1.1":
                self._chunked = True
                lines.append("transfer-encoding: chunked\r\n")
            else:
                self.keep_alive = False
        if not self.keep_alive:
            lines.append("connection: close\r\n")
        elif self._request.http_version == "1.0":
            lines.append("connection: keep-alive\r\n")
        lines.append("\r\n")
        self.status = status
        self.head_sent = True
        if no_body:
            self._head_only = True
        # Corked: the head goes out with the first body bytes (or at end()), so a small
        # response costs one send() system call instead of two.
        self._pending = "".join(lines).encode("latin-1")

    def write(self, data: bytes) -> None:
        if self._protocol.is_closing():
            raise ClientDisconnected
        if not data or self._head_only:
            return
        self.bytes_out += len(data)
        if self._chunked:
            data = b"%x\r\n%b\r\n" % (len(data), data)
        if self._pending:
            data = self._pending + data
            self._pending = b""
        self._protocol.write(data)

    def flush(self) -> None:
        """Send a corked head now (e.g. before waiting on a slow upstream body)."""
        if self._pending:
            self._protocol.write(self._pending)
            self._pending = b""

    async def drain(self) -> None:
        await self._protocol.drain()

    def end(self) -> None:
        if not self._protocol.is_closing():
            tail = b"0\r\n\r\n" if self._chunked else b""
            if self._pending or tail:
                self._protocol.write(self._pending + tail)
                self._pending = b""
        self.finished = True

    def send(self, status: int, headers: list[tuple[str, str]], body: bytes) -> None:
        """A complete response with a known body, in one write."""
        self.write_head(status, headers, len(body))
        if body and not self._head_only:
            self.bytes_out += len(body)
            self._protocol.write(self._pending + body)
        else:
            self._protocol.write(self._pending)
        self._pending = b""
        self.finished = True

    @property
    def paused(self) -> bool:
        return self._protocol.writing_paused

    def on_resume(self, callback: Callable[[], None]) -> None:
        self._protocol.add_resume_callback(callback)


_STATUS_LINES: dict[int, str] = {}


def _status_line(status: int) -> str:
    line = _STATUS_LINES.get(status)
    if line is None:
        from dijk.pipeline.problem import title_for

        line = f"HTTP/1.1 {status} {title_for(status)}\r\n"
        _STATUS_LINES[status] = line
    return line


_date_cache: tuple[int, str] = (0, "")


def http_date() -> str:
    """Current date for the Date header, recomputed at most once a second."""
    global _date_cache
    now = int(time.time())
    if _date_cache[0] != now:
        _date_cache = (now, formatdate(now, usegmt=True))
    return _date_cache[1]


class _Parsing:
    """Request being parsed (between message begin and headers complete).

    The header fields that decide framing and validity are noted as they arrive, so that
    building the request does not walk the header list again.
    """

    __slots__ = (
        "chunked",
        "content_length",
        "expect_continue",
        "expect_refused",
        "header_bytes",
        "headers",
        "host",
        "hosts",
        "transfer_coding_refused",
        "transfer_codings",
        "url",
    )

    def __init__(self) -> None:
        self.url = b""
        self.headers: list[tuple[str, str]] = []
        self.header_bytes = 0
        self.content_length: int | None = None
        self.chunked = False
        self.transfer_coding_refused = False
        self.transfer_codings = 0
        self.hosts = 0
        self.host = ""
        self.expect_continue = False
        self.expect_refused = False

    def note(self, name: str, value: str) -> None:
        if name == "content-length":
            self.content_length = int(value)  # llhttp has validated it (digits, single)
        elif name == "transfer-encoding":
            # llhttp refuses (400) a request whose last coding is not chunked, and frames
            # the body as chunked when it is; a coding before it (gzip, identity, ...) would
            # then reach the upstream undeclared once the body goes on with Content-Length,
            # so only a lone "chunked" is served, anything else is 501 (RFC 9112 §6.1).
            codings = value.split(",")
            self.transfer_codings += len(codings)
            self.transfer_coding_refused = (
                self.transfer_codings > 1 and codings[-1].strip(" \t").lower() == "chunked"
            )
            self.chunked = True
        elif name == "host":
            self.hosts += 1
            self.host = value
        elif value.strip().lower() == "100-continue":  # expect
            self.expect_continue = True
        else:
            self.expect_refused = True


# Host = uri-host [ ":" port ] (RFC 9112 §3.2, RFC 3986 §3.2.2). A reg-name is held to the
# unreserved characters: percent-encoding (an encoded CR/LF or "/") and sub-delims ("," would
# split X-Forwarded-Host in two) have no place in a host name that a gateway passes on.
_HOST = re.compile(r"(?:[A-Za-z0-9._~-]{1,253}|\[[0-9A-Fa-f:.]{2,45}\])(?::[0-9]{0,5})?")
_VALID_HOSTS: set[str] = set()
_VALID_HOSTS_MAX = 1024


def valid_host(value: str) -> bool:
    """Whether a Host value is ``host[:port]`` (empty is allowed: RFC 9112 §3.2)."""
    if not value or value in _VALID_HOSTS:
        return True
    if _HOST.fullmatch(value) is None:
        return False
    port = ""
    if value.startswith("["):
        address, _, port = value[1:].partition("]")
        try:
            ipaddress.IPv6Address(address)
        except ValueError:
            return False
        port = port[1:]
    else:
        port = value.partition(":")[2]
    if port and int(port) > 65535:
        return False
    if len(_VALID_HOSTS) < _VALID_HOSTS_MAX:
        _VALID_HOSTS.add(value)  # known good: the next request skips the pattern
    return True


_NOTED = frozenset({"content-length", "transfer-encoding", "host", "expect"})


class HttpProtocol(asyncio.Protocol):
    """One client connection: parses requests, runs the handler one request at a time."""

    def __init__(
        self,
        handler: Handler,
        limits: ServerLimits,
        scheme: str = "http",
        on_close: Callable[[HttpProtocol], None] | None = None,
        connections: PerIpConnections | None = None,
        memory: BodyMemory | None = None,
    ) -> None:
        self._handler = handler
        self._limits = limits
        self._scheme = scheme
        self._on_close = on_close
        self._connections = connections
        self._memory = memory
        self.body_memory_limit = limits.max_buffered_body_bytes
        self._counted = False
        self._loop = asyncio.get_running_loop()
        self._transport: asyncio.Transport | None = None
        self._parser = httptools.HttpRequestParser(self)
        self._parsing: _Parsing | None = None
        self._body_request: Request | None = None
        self._queue: collections.deque[Request] = collections.deque()
        self._task: asyncio.Task[None] | None = None
        # Header and keep-alive deadline (monotonic s, 0 = none), swept by proxy/deadlines.py
        # rather than a loop timer armed and cancelled twice per request.
        self.deadline = 0.0
        self._deadlines = Deadlines.of(self._loop)
        self._idle = True
        self._closing = False
        self._close_when_done = False
        self._eof = False
        self._lingering = False
        self._lingered = 0
        self._linger_handle: asyncio.TimerHandle | None = None
        self._pending_fault: ProtocolFault | None = None
        self._paused = 0  # the _PAUSE_* reasons for which the transport is not read
        # Bytes received but not parsed: held back while the pipelined queue is full
        # (bounded: the transport is not read meanwhile).
        self._backlog = b""
        # In a chunked request body: bytes received that were not chunk data, against an
        # allowance of max_header_bytes plus a little framing per chunk (None: not in one).
        self._chunk_extra: int | None = None
        self._chunk_allowance = 0
        self.writing_paused = False
        self._drain_waiter: asyncio.Future[None] | None = None
        self._resume_callbacks: list[Callable[[], None]] = []
        self._client_ip = ""
        self._client_port = 0
        self._tls: dict[str, object] | None = None

    # ---- connection lifecycle -------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport  # type: ignore[assignment]  # uvloop transports are duck-typed
        peer = transport.get_extra_info("peername")
        if isinstance(peer, tuple) and len(peer) >= 2:
            self._client_ip, self._client_port = str(peer[0]), int(peer[1])
        if self._scheme == "https":
            self._tls = _tls_info(transport.get_extra_info("ssl_object"))
        metrics.CONNECTIONS.inc()
        set_limits = getattr(transport, "set_write_buffer_limits", None)
        if set_limits is not None:
            set_limits(high=_WRITE_HIGH, low=_WRITE_LOW)
        if self._connections is not None:
            counted = self._connections.acquire(self._client_ip)
            if counted is False:
                self._refuse_connection(self._connections.limit)
                return
            self._counted = bool(counted)
        limits = self._limits
        self._deadlines.add(self, min(limits.header_timeout_s, limits.keepalive_timeout_s))
        self._arm_timer(limits.header_timeout_s)

    def _refuse_connection(self, limit: int) -> None:
        """Over the per-IP connection cap: answer 429 at once and close, reading nothing."""
        fault = ProtocolFault(
            429,
            "limits.too_many_connections",
            f"Too many open connections from this address (at most {limit}).",
        )
        metrics.protocol_error(fault.reason)
        headers, body = self._handler.protocol_error(fault, None, self._client_ip)
        head = [_status_line(fault.status)]
        head.extend(f"{name}: {value}\r\n" for name, value in headers)
        head.append(f"retry-after: 1\r\ncontent-length: {len(body)}\r\nconnection: close\r\n\r\n")
        self.write("".join(head).encode("latin-1") + body)
        self._close()

    def connection_lost(self, exc: Exception | None) -> None:
        metrics.CONNECTIONS.dec()
        if self._counted and self._connections is not None:
            self._counted = False
            self._connections.release(self._client_ip)
        self._closing = True
        self._cancel_timer()
        if self._linger_handle is not None:
            self._linger_handle.cancel()
            self._linger_handle = None
        self._deadlines.discard(self)
        error = ClientDisconnected()
        if self._body_request is not None:
            self._body_request.body.fail(error)
        for request in self._queue:
            request.body.fail(error)
            request.body.discard()  # never handled: nothing else gives its bytes back
        self._queue.clear()
        self._backlog = b""
        waiter = self._drain_waiter
        if waiter is not None and not waiter.done():
            waiter.set_exception(error)
        if self._on_close is not None:
            self._on_close(self)

    def data_received(self, data: bytes) -> None:
        if self._closing:
            if self._lingering:
                self._lingered += len(data)
                if self._lingered > _LINGER_BYTES:
                    self._close_now()
            return
        if self._backlog:
            self._backlog += data  # keep the order; the transport is paused, so bounded
            return
        request = self._body_request
        body_left = 0 if request is None else self._body_left(request)
        if len(self._queue) + data.count(_HEAD_END, body_left) < self._limits.max_pipelined:
            self._parse(data)  # the usual case, inlined from _feed: one call less
        else:
            self._feed(data, body_left)

    @staticmethod
    def _body_left(request: Request) -> int:
        """Bytes of a Content-Length body still to come (no request head can be in them)."""
        length = request.content_length
        return length - request.body.received if length else 0

    def _feed(self, data: bytes, body_left: int = 0) -> None:
        """Parse ``data``, but never more pipelined requests than the queue may hold.

        llhttp cannot be paused from a callback, so the data is cut instead: every request
        head ends with CRLF CRLF, so a piece holding ``n`` of them completes at most
        ``n + 1`` heads. One request, or a few, are parsed in one call; a long pipeline is
        parsed head by head, and what does not fit waits unparsed, unread. ``body_left``
        bytes at the start are the rest of a Content-Length body: no head can begin there.
        """
        if len(self._queue) + data.count(_HEAD_END, body_left) < self._limits.max_pipelined:
            self._parse(data)
            return
        start, size = 0, len(data)
        if body_left:
            start = min(body_left, size)
            self._parse(data[:start])
            if self._closing or self._close_when_done:
                return
        while start < size:
            if len(self._queue) >= self._limits.max_pipelined:
                self._backlog = data[start:]
                self._pause(_PAUSE_BACKLOG)
                return
            end = data.find(_HEAD_END, start)
            end = size if end < 0 else end + 4
            self._parse(data[start:end])
            if self._closing or self._close_when_done:
                return
            start = end

    def _parse(self, data: bytes) -> None:
        extra = self._chunk_extra
        if extra is not None:
            self._chunk_extra = extra + len(data)
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self._fault(
                ProtocolFault(
                    501, "http.upgrade_unsupported", "Connection upgrades are not supported."
                )
            )
            return
        except httptools.HttpParserError as exc:
            cause = exc.__context__
            if isinstance(cause, ProtocolFault):
                # Without its traceback: its frames hold the data being parsed (a body
                # chunk), which must not outlive the refusal.
                self._fault(cause.with_traceback(None))
                return
            if cause is not None and not isinstance(cause, httptools.HttpParserError):
                log.error("parser_callback_failed", error=type(cause).__name__)
            message = (str(exc) or "malformed request").rstrip(".")
            self._fault(ProtocolFault(400, "http.malformed", f"Malformed HTTP request: {message}."))
            return
        extra = self._chunk_extra
        if extra is not None and extra > self._chunk_allowance:
            # Chunk extensions are bounded like header fields: llhttp reads them without a
            # callback, so what a chunked body sent besides its data is counted here.
            self._chunk_extra = None
            limit = self._limits.max_header_bytes
            self._fault(
                ProtocolFault(
                    400,
                    "limits.chunk_extensions_too_large",
                    f"The chunk extensions are larger than the limit of {limit} bytes.",
                )
            )

    def eof_received(self) -> bool | None:
        self._eof = True
        if self._lingering:
            self._close_now()
            return True
        if self._parsing is not None and self._parsing.header_bytes:
            # A head cut short by EOF can never complete. If a request before it is still
            # being served, its answer goes out first (the upstream has it already); the
            # connection closes when it is done (_finish sees _eof).
            if self._task is None and not self._queue:
                self._close()
        elif self._body_request is not None:
            self._body_request.body.fail(
                ProtocolFault(400, "http.incomplete_body", "The request body was cut short.")
            )
        elif self._task is None and not self._queue:
            self._close()
        return True  # keep the write side open to finish a response in progress

    # ---- flow control ------------------------------------------------------------------
    def pause_reading(self) -> None:
        """A request body's buffer is over its high-water mark (called by :class:`Body`)."""
        self._pause(_PAUSE_BODY)

    def resume_reading(self) -> None:
        self._resume(_PAUSE_BODY)

    def _pause(self, reason: int) -> None:
        if not self._paused and self._transport is not None and not self._closing:
            self._transport.pause_reading()
            if self._body_request is not None:
                self._body_request.body.hold_clock(time.monotonic())
        self._paused |= reason

    def _resume(self, reason: int) -> None:
        if not self._paused & reason:
            return
        self._paused &= ~reason
        if not self._paused and self._transport is not None and not self._closing:
            self._transport.resume_reading()
            if self._body_request is not None:
                self._body_request.body.release_clock(time.monotonic())

    def _parse_backlog(self) -> None:
        """Parse what was held back, now that the queue has room (it may hold back again)."""
        data, self._backlog = self._backlog, b""
        if data:
            request = self._body_request
            self._feed(data, 0 if request is None else self._body_left(request))
        if not self._backlog:
            self._resume(_PAUSE_BACKLOG)

    def pause_writing(self) -> None:
        self.writing_paused = True

    def resume_writing(self) -> None:
        self.writing_paused = False
        callbacks, self._resume_callbacks = self._resume_callbacks, []
        for callback in callbacks:
            callback()
        waiter = self._drain_waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)
        if self._task is None and self._queue and not self._closing:
            self._start_next()  # answers were held back until the client read

    async def drain(self) -> None:
        if self._closing:
            raise ClientDisconnected
        if not self.writing_paused:
            return
        self._drain_waiter = self._loop.create_future()
        try:
            await self._drain_waiter
        finally:
            self._drain_waiter = None

    def write(self, data: bytes) -> None:
        if self._transport is not None and not self._closing:
            self._transport.write(data)

    def add_resume_callback(self, callback: Callable[[], None]) -> None:
        """Call ``callback`` once when the client's socket buffer has drained."""
        self._resume_callbacks.append(callback)

    def is_closing(self) -> bool:
        return self._closing or self._transport is None or self._transport.is_closing()

    def send_continue(self) -> None:
        self.write(b"HTTP/1.1 100 Continue\r\n\r\n")

    # ---- parser callbacks ----------------------------------------------------------------
    def on_message_begin(self) -> None:
        self._parsing = _Parsing()
        if self._idle:
            # The first byte of a new request: from now on the header deadline applies.
            self._idle = False
            self._arm_timer(self._limits.header_timeout_s)

    def on_url(self, url: bytes) -> None:
        parsing = self._parsing
        assert parsing is not None
        parsing.url += url
        parsing.header_bytes += len(url)
        if parsing.header_bytes > self._limits.max_header_bytes:
            raise _too_large(self._limits.max_header_bytes)

    def on_header(self, name: bytes, value: bytes) -> None:
        parsing = self._parsing
        if parsing is None:
            # A field after the last chunk: a trailer. The body goes upstream with
            # Content-Length, where trailers have no place, and a trailer the gateway never
            # inspected must not pass for a header: refused, like anything unforwardable.
            raise ProtocolFault(
                400, "http.trailers_unsupported", "Trailer fields in a chunked body are refused."
            )
        parsing.header_bytes += len(name) + len(value) + 4
        if parsing.header_bytes > self._limits.max_header_bytes:
            raise _too_large(self._limits.max_header_bytes)
        if len(parsing.headers) >= self._limits.max_headers:
            raise ProtocolFault(
                431,
                "limits.too_many_headers",
                f"The request has more than {self._limits.max_headers} header fields.",
            )
        lowered = HEADER_NAMES.get(name) or header_name(name)
        text = value.decode("latin-1")
        if lowered in _NOTED:
            parsing.note(lowered, text)
        parsing.headers.append((lowered, text))

    def on_headers_complete(self) -> None:
        parsing = self._parsing
        assert parsing is not None
        self._parsing = None
        self._cancel_timer()
        request = self._build_request(parsing)
        self._body_request = request
        if self._paused and request.body is not NO_BODY:
            request.body.hold_clock(time.monotonic())  # parsed from held-back data
        if request.chunked:
            self._chunk_extra = 0
            self._chunk_allowance = self._limits.max_header_bytes
        self._queue.append(request)
        if self._task is None:
            self._start_next()

    def on_body(self, body: bytes) -> None:
        if self._chunk_extra is not None:
            self._chunk_extra -= len(body)
        if self._body_request is not None:
            self._body_request.body.feed(body)

    def on_chunk_header(self) -> None:
        self._chunk_allowance += _CHUNK_FRAMING

    def on_message_complete(self) -> None:
        self._chunk_extra = None
        request = self._body_request
        self._body_request = None
        if request is not None:
            request.body.finish()

    # ---- request handling ----------------------------------------------------------------
    def _build_request(self, parsing: _Parsing) -> Request:
        parser = self._parser
        method = parser.get_method().decode("ascii")
        version = parser.get_http_version()
        target = parsing.url.decode("latin-1")
        headers = parsing.headers
        content_length = parsing.content_length
        chunked = parsing.chunked
        hosts = parsing.hosts
        expect_continue = parsing.expect_continue
        if version != "1.1" and version != "1.0":
            # llhttp also reads "HTTP/2.0" and bare HTTP/0.9 request lines; neither is
            # served by an HTTP/1 gateway (RFC 9110 §15.6.6).
            raise ProtocolFault(
                505, "http.version_not_supported", "Only HTTP/1.1 and HTTP/1.0 are supported."
            )
        if parsing.transfer_coding_refused:
            raise ProtocolFault(
                501,
                "http.transfer_encoding_unsupported",
                "Only 'Transfer-Encoding: chunked' is supported (no other transfer coding).",
            )
        if parsing.expect_refused:
            raise ProtocolFault(
                417, "http.expectation_failed", "Only 'Expect: 100-continue' is supported."
            )
        if chunked and version != "1.1":
            raise ProtocolFault(
                400,
                "http.transfer_encoding",
                "Transfer-Encoding is not allowed in HTTP/1.0 requests.",
            )
        if hosts > 1 or (version == "1.1" and hosts == 0):
            raise ProtocolFault(
                400, "http.host_header", "An HTTP/1.1 request needs exactly one Host header."
            )
        if hosts and parsing.host not in _VALID_HOSTS and not valid_host(parsing.host):
            raise ProtocolFault(
                400, "http.invalid_host", "The Host header is not a valid host[:port]."
            )
        if method == "CONNECT":
            raise ProtocolFault(405, "http.method_not_allowed", "CONNECT is not supported.")
        if parser.should_upgrade():
            # Refused here, before the request is queued: llhttp hands whatever follows the
            # headers (even a declared body) to the new protocol, so serving the request
            # would forward a head whose body never comes.
            raise ProtocolFault(
                501, "http.upgrade_unsupported", "Connection upgrades are not supported."
            )
        path, _, query = target.partition("?")
        if not chunked and not content_length and not expect_continue:
            body = NO_BODY  # nothing will be fed: share one complete, empty body
        else:
            body = Body(
                self,
                expect_continue,
                time.monotonic() + self._limits.body_timeout_s,
                self._limits.min_body_rate_bytes_s,
                self._limits.body_rate_grace_s,
                self._memory,
            )
            if not chunked and not content_length:
                body.complete = True
        return Request(
            method=method,
            target=target,
            path=path,
            query=query,
            headers=headers,
            http_version=version,
            keep_alive=parser.should_keep_alive(),
            content_length=content_length,
            chunked=chunked,
            client_ip=self._client_ip,
            client_port=self._client_port,
            scheme=self._scheme,
            body=body,
            received_at=time.perf_counter(),
            tls=self._tls,
        )

    def _start_next(self) -> None:
        if not self._queue or self._closing:
            self._task = None
            return
        if self.writing_paused:
            # The client is not reading its answers: produce no more until it does
            # (resume_writing starts the next one), for at most the keep-alive timeout.
            self._task = None
            self._arm_timer(self._limits.keepalive_timeout_s)
            return
        request = self._queue.popleft()
        self._task = self._loop.create_task(self._run(request))
        if self._backlog:
            self._parse_backlog()  # the queue has room again

    async def _run(self, request: Request) -> None:
        writer = ResponseWriter(self, request)
        try:
            await self._handler.handle(request, writer)
        except ClientDisconnected:
            self._close()
        except Exception:
            log.exception("handler_crashed", method=request.method)
            if not writer.head_sent and not self.is_closing():
                self._write_fault(
                    ProtocolFault(500, "gateway.internal_error", "An internal error occurred."),
                    request,
                )
            self._close()
        if self._close_when_done:
            # A later request on this connection was refused while this one was served.
            fault, self._pending_fault = self._pending_fault, None
            if fault is not None and writer.finished and writer.keep_alive:
                self._write_fault(fault, None)
            self._linger()
            self._task = None
            return
        if not writer.finished or not writer.keep_alive or self._closing:
            if request.body.complete or not writer.finished:
                self._close()
            else:
                self._linger()  # answered before the body was read (413, 401, ...)
            self._task = None
            return
        self._task = None
        if self._queue:
            self._start_next()
        elif self._backlog:
            self._parse_backlog()
        elif self._eof:
            self._close()  # the client has shut down its side: no request can follow
        elif self._parsing is not None:
            # The next head began arriving while this request was served, when no timer
            # runs: it gets the header deadline from now, or a slowloris waits forever.
            self._arm_timer(self._limits.header_timeout_s)
        elif self._body_request is None:
            self._idle = True
            self._arm_timer(self._limits.keepalive_timeout_s)

    # ---- errors and timers ------------------------------------------------------------
    # ---- errors and timers ------------------------------------------------------------
    def _fault(self, fault: ProtocolFault) -> None:
        """A request-level protocol error: answer it (when we still can) and close."""
        metrics.protocol_error(fault.reason)
        if self._body_request is not None and self._task is not None:
            # The handler is reading this body: let it see the error and answer.
            self._body_request.body.fail(fault)
            self._closing_after_task()
            return
        if self._task is not None:
            # A response is in progress for an earlier request; do not interleave: answer
            # this one after it (unless other requests were queued in between), then close.
            if not self._queue:
                self._pending_fault = fault
            self._closing_after_task()
            return
        if self._queue:
            # Requests wait for a client that does not read its answers: an answer to this
            # one would come before theirs. Close, as when requests are queued behind one.
            for request in self._queue:
                request.body.discard()
            self._queue.clear()
            self._close()
            return
        self._write_fault(fault, None)
        self._linger()

    def _closing_after_task(self) -> None:
        self._close_when_done = True
        for request in self._queue:
            request.body.discard()
        self._queue.clear()
        self._backlog = b""
        self._chunk_extra = None
        self._pause(_PAUSE_CLOSING)
        self._parser = httptools.HttpRequestParser(self)  # discard what follows
        self._parsing = None
        self._body_request = None  # nothing more is fed to it (it has been failed)

    def _write_fault(self, fault: ProtocolFault, request: Request | None) -> None:
        headers, body = self._handler.protocol_error(fault, request, self._client_ip)
        head = [_status_line(fault.status)]
        head.extend(f"{name}: {value}\r\n" for name, value in headers)
        head.append(f"content-length: {len(body)}\r\nconnection: close\r\n\r\n")
        self.write("".join(head).encode("latin-1") + body)

    def _arm_timer(self, seconds: float) -> None:
        self.deadline = time.monotonic() + seconds

    def _cancel_timer(self) -> None:
        self.deadline = 0.0

    def deadline_passed(self) -> None:
        """The header or keep-alive deadline passed (called by the loop's sweep)."""
        self.deadline = 0.0
        if self._closing or self._task is not None:
            return
        if self._queue and self.writing_paused:
            self._close()  # answers waiting for a client that stopped reading them
            return
        if self._idle and self._parsing is None:
            self._close()  # idle keep-alive connection: close quietly
            return
        self._fault(ProtocolFault(408, "http.header_timeout", "The request headers took too long."))

    def close_idle(self) -> None:
        """Close now unless a request is being handled (used on shutdown)."""
        if self._task is None:
            self._close()

    def force_close(self) -> None:
        self._close()

    def _close(self) -> None:
        if self._transport is not None and not self._transport.is_closing():
            self._transport.close()
        self._closing = True

    def _linger(self) -> None:
        """Close after a response while the client may still be sending (nginx's
        ``lingering_close``): closing a socket with unread data makes the kernel send a
        reset, which can destroy the response before the client reads it. Instead, send
        FIN, read and discard what still arrives for a short, bounded while, then close.
        """
        transport = self._transport
        if transport is None or transport.is_closing() or self._lingering:
            self._close()
            return
        self._closing = True
        self._lingering = True
        try:
            if transport.can_write_eof():
                transport.write_eof()
        except (OSError, RuntimeError):
            self._close_now()
            return
        if self._paused:
            self._paused = 0
            transport.resume_reading()
        self._linger_handle = self._loop.call_later(_LINGER_SECONDS, self._close_now)

    def _close_now(self) -> None:
        if self._linger_handle is not None:
            self._linger_handle.cancel()
            self._linger_handle = None
        self._closing = True
        if self._transport is not None and not self._transport.is_closing():
            self._transport.close()


def _too_large(limit: int) -> ProtocolFault:
    return ProtocolFault(
        431,
        "limits.headers_too_large",
        f"The request line and headers are larger than the limit of {limit} bytes.",
    )


def _tls_info(ssl_object: ssl.SSLObject | None) -> dict[str, object] | None:
    if ssl_object is None:
        return None
    info: dict[str, object] = {
        "version": ssl_object.version(),
        "cipher": (ssl_object.cipher() or ("",))[0],
    }
    certificate = ssl_object.getpeercert(binary_form=True)
    if certificate:
        import hashlib

        info["client_cert_sha256"] = hashlib.sha256(certificate).hexdigest()
        info["client_cert"] = ssl_object.getpeercert()
    return info
