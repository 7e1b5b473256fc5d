"""A lean keep-alive HTTP/1.1 client pool for one upstream, on asyncio Protocols + httptools.

Why it exists: aiohttp's client does far more per request than a forwarder needs (URL
normalisation, cookie jar, redirects, tracing hooks, a stream reader per response). This
pool is about the least a correct keep-alive forwarder must do, so the benchmark can show
how much of a Python proxy's cost is the HTTP client rather than the server in front.

Deliberately small scope, fine for the benchmark and documented rather than hidden:

- request bodies are sent whole with ``Content-Length``; response bodies are buffered whole
  (``Content-Length`` or chunked framing; httptools removes the chunking);
- not supported: responses to ``HEAD`` (httptools cannot be told that such a response has
  no body), ``1xx`` interim responses, and bodies delimited by the upstream closing the
  connection (they end in :class:`UpstreamError`);
- idle connections are kept in a LIFO deque (the most recently used, hence warm, first); a
  reused connection that the upstream had already closed is retried once on a new one,
  for idempotent methods only (RFC 9110 section 9.2.2).
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Iterable
from typing import NamedTuple, cast

import httptools

Header = tuple[bytes, bytes]

_IDEMPOTENT = frozenset({b"GET", b"HEAD", b"OPTIONS", b"TRACE", b"PUT", b"DELETE"})
_BODY_EXPECTED = frozenset({b"POST", b"PUT", b"PATCH"})


class UpstreamResponse(NamedTuple):
    """A complete upstream response; header names as the upstream spelled them."""

    status: int
    headers: list[Header]
    body: bytes


class UpstreamError(Exception):
    """The upstream could not be reached, timed out, or broke the HTTP exchange."""


class _StaleConnectionError(UpstreamError):
    """The connection closed before a single response byte arrived."""


class _Connection(asyncio.Protocol):
    """One keep-alive connection to the upstream; carries one exchange at a time."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.keep_alive = False
        self._parser = httptools.HttpResponseParser(self)
        self._waiter: asyncio.Future[UpstreamResponse] | None = None
        self._headers: list[Header] = []
        self._body: list[bytes] = []
        self._received_any = False

    # asyncio.Protocol -------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports implement asyncio.Transport without subclassing it.
        self.transport = cast(asyncio.Transport, transport)

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None
        self.keep_alive = False
        if self._received_any:
            self._fail(UpstreamError("upstream closed the connection mid-response"))
        else:
            self._fail(_StaleConnectionError("upstream closed the connection"))

    def data_received(self, data: bytes) -> None:
        if self._waiter is None:
            # Bytes nobody asked for: the connection is out of step, never reuse it.
            self.close()
            return
        self._received_any = True
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserError as error:
            self._fail(UpstreamError(f"malformed response from upstream: {error}"))
            self.close()

    # httptools callbacks ----------------------------------------------------------------

    def on_header(self, name: bytes, value: bytes) -> None:
        self._headers.append((name, value))

    def on_body(self, body: bytes) -> None:
        self._body.append(body)

    def on_message_complete(self) -> None:
        waiter, self._waiter = self._waiter, None
        self.keep_alive = self._parser.should_keep_alive()
        if waiter is not None and not waiter.done():
            status = self._parser.get_status_code()
            waiter.set_result(UpstreamResponse(status, self._headers, b"".join(self._body)))

    # used by the pool -------------------------------------------------------------------

    @property
    def is_open(self) -> bool:
        return self.transport is not None and not self.transport.is_closing()

    def send(
        self, data: bytes, loop: asyncio.AbstractEventLoop
    ) -> asyncio.Future[UpstreamResponse]:
        assert self.transport is not None
        self._headers = []
        self._body = []
        self._received_any = False
        self.keep_alive = False
        waiter: asyncio.Future[UpstreamResponse] = loop.create_future()
        self._waiter = waiter
        self.transport.write(data)
        return waiter

    def expire(self) -> None:
        self._fail(UpstreamError("upstream read timeout"))
        self.close()

    def close(self) -> None:
        self.keep_alive = False
        if self.transport is not None:
            self.transport.close()

    def _fail(self, error: Exception) -> None:
        waiter, self._waiter = self._waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_exception(error)


class UpstreamPool:
    """Keep-alive connections to one ``host:port``; :meth:`request` forwards one exchange."""

    def __init__(
        self,
        host: str,
        port: int,
        *,
        max_idle: int = 256,
        connect_timeout_s: float = 2.0,
        read_timeout_s: float = 30.0,
    ) -> None:
        self._host = host
        self._port = port
        self._host_header = f"{host}:{port}".encode("ascii")
        self._max_idle = max_idle
        self._connect_timeout_s = connect_timeout_s
        self._read_timeout_s = read_timeout_s
        self._idle: deque[_Connection] = deque()

    async def request(
        self, method: bytes, target: bytes, headers: Iterable[Header], body: bytes = b""
    ) -> UpstreamResponse:
        """Send one request and return the whole response.

        ``headers`` must already be end-to-end headers only: the pool adds ``host`` and,
        where needed, ``content-length``, and forwards the rest unchanged.
        """
        data = self._serialise(method, target, headers, body)
        retry_allowed = method in _IDEMPOTENT
        while True:
            connection, reused = await self._acquire()
            try:
                response = await self._exchange(connection, data)
            except _StaleConnectionError:
                if reused and retry_allowed:
                    retry_allowed = False
                    continue
                raise
            except BaseException:
                # Timeout, parse error or a cancelled caller: the connection's state is
                # unknown, so it is never handed to another request.
                connection.close()
                raise
            self._release(connection)
            return response

    async def close(self) -> None:
        """Close every idle connection (connections in use close when released)."""
        while self._idle:
            self._idle.pop().close()

    def _serialise(
        self, method: bytes, target: bytes, headers: Iterable[Header], body: bytes
    ) -> bytes:
        parts = [method, b" ", target, b" HTTP/1.1\r\nhost: ", self._host_header, b"\r\n"]
        for name, value in headers:
            parts += (name, b": ", value, b"\r\n")
        if body or method in _BODY_EXPECTED:
            parts += (b"content-length: ", str(len(body)).encode("ascii"), b"\r\n")
        parts += (b"\r\n", body)
        return b"".join(parts)

    async def _acquire(self) -> tuple[_Connection, bool]:
        while self._idle:
            connection = self._idle.pop()
            if connection.is_open:
                return connection, True
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(self._connect_timeout_s):
                _, connection = await loop.create_connection(_Connection, self._host, self._port)
        except (OSError, TimeoutError) as error:
            raise UpstreamError(f"cannot connect to upstream: {error!r}") from error
        return connection, False

    async def _exchange(self, connection: _Connection, data: bytes) -> UpstreamResponse:
        loop = asyncio.get_running_loop()
        # call_later is cheaper than asyncio.timeout() and enough for one deadline.
        deadline = loop.call_later(self._read_timeout_s, connection.expire)
        try:
            return await connection.send(data, loop)
        finally:
            deadline.cancel()

    def _release(self, connection: _Connection) -> None:
        if connection.keep_alive and connection.is_open and len(self._idle) < self._max_idle:
            self._idle.append(connection)
        else:
            connection.close()
