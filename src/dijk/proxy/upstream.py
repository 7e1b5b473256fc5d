"""A lean keep-alive HTTP/1.1 client pool on asyncio protocols, httptools parsing responses.

Chosen over aiohttp by ``bench/proxy.py`` (the client is half of the proxy's per-request
cost). One pool per upstream; connections are reused LIFO; an idle connection the upstream
has closed is dropped, and a request that failed on a reused connection before any byte of
the response arrived is retried once on a fresh one (only when its body is replayable).
"""

from __future__ import annotations

import asyncio
import collections
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass

import httptools

from dijk.proxy.deadlines import Deadlines
from dijk.proxy.headers import HEADER_NAMES, header_name


class UpstreamError(Exception):
    """The upstream could not be reached (502) or did not answer in time (504)."""

    def __init__(self, status: int, reason: str, detail: str, *, retryable: bool = False) -> None:
        super().__init__(detail)
        self.status = status
        self.reason = reason
        self.detail = detail
        self.retryable = retryable


@dataclass(slots=True)
class ResponseHead:
    status: int
    headers: list[tuple[str, str]]
    keep_alive: bool
    content_length: int | None
    chunked: bool


class UpstreamConnection(asyncio.Protocol):
    """One connection; serves one exchange at a time.

    An exchange has one future, for the response head (the caller always waits for it).
    Its end is two plain fields (``_complete``, ``_error``); a future for it is made only
    when a caller has to wait for the rest of a body that has not arrived yet. The read
    deadline is swept by :mod:`dijk.proxy.deadlines` instead of a timer per exchange.
    """

    def __init__(self, pool: UpstreamPool) -> None:
        self._pool = pool
        self._loop = asyncio.get_running_loop()
        self._transport: asyncio.Transport | None = None
        self._parser = httptools.HttpResponseParser(self)
        self._headers: list[tuple[str, str]] = []
        self._content_length: int | None = None  # of the response being parsed
        self._chunked = False
        self._head: asyncio.Future[ResponseHead] | None = None
        self._complete = False
        self._error: UpstreamError | None = None
        self._done_waiter: asyncio.Future[None] | None = None
        # Back-pressure on a request body streamed up: set while the upstream's socket
        # buffer is full, so that the gateway stops taking body bytes from the client.
        self.writing_paused = False
        self._drain_waiter: asyncio.Future[None] | None = None
        self._sink: Callable[[bytes], None] | None = None
        self._pending: list[bytes] = []
        self._got_bytes = False
        self._last_activity = 0.0
        self.deadline = 0.0  # monotonic s while an exchange waits for bytes; 0 = none
        self._deadlines = Deadlines.of(self._loop)
        self._head_only = False
        self.closed = False
        self.reused = False
        self.reusable = False
        self.idle_since = 0.0
        self.body_bytes = 0

    @property
    def pool(self) -> UpstreamPool:
        """The pool (one target) this connection belongs and returns to."""
        return self._pool

    # ---- protocol callbacks --------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport  # type: ignore[assignment]  # uvloop transports are duck-typed
        self._deadlines.add(self, self._pool.read_timeout)

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.reusable = False
        self.deadline = 0.0
        self._deadlines.discard(self)
        self._pool.forget(self)
        self._wake_drain()
        if self._head is not None and not self._head.done():
            retryable = self.reused and not self._got_bytes
            self._head.set_exception(
                UpstreamError(
                    502,
                    "upstream.connection_lost",
                    "The upstream closed the connection before answering.",
                    retryable=retryable,
                )
            )
        if self._head is not None and not self.finished:
            if self._head.done() and self._can_end_on_close():
                self._finish()
            else:
                self._end(
                    UpstreamError(
                        502, "upstream.connection_lost", "The upstream response was cut short."
                    )
                )

    def _can_end_on_close(self) -> bool:
        head = self._head
        if head is None or head.cancelled() or head.exception() is not None:
            return False
        value = head.result()
        return value.content_length is None and not value.chunked

    def data_received(self, data: bytes) -> None:
        self._got_bytes = True
        self._last_activity = time.monotonic()
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self._fail(
                UpstreamError(
                    502, "upstream.bad_response", f"The upstream sent an invalid response: {exc}"
                )
            )

    def eof_received(self) -> bool | None:
        return False

    def pause_writing(self) -> None:
        self.writing_paused = True

    def resume_writing(self) -> None:
        self.writing_paused = False
        self._wake_drain()

    def _wake_drain(self) -> None:
        waiter = self._drain_waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def drain(self) -> None:
        """Wait until the upstream has taken what was written (its buffer is under the low
        mark); raises the exchange's error if it ended meanwhile."""
        while self.writing_paused and not self.closed and self._error is None:
            waiter = self._drain_waiter = self._loop.create_future()
            try:
                await waiter
            finally:
                self._drain_waiter = None
        if self._error is not None:
            raise self._error
        if self.closed:
            raise UpstreamError(
                502, "upstream.connection_lost", "The upstream closed the connection."
            )

    def on_header(self, name: bytes, value: bytes) -> None:
        lowered = HEADER_NAMES.get(name) or header_name(name)
        text = value.decode("latin-1")
        if lowered == "content-length":
            self._content_length = int(text)  # llhttp has validated it
        elif lowered == "transfer-encoding":
            self._chunked = True
        self._headers.append((lowered, text))

    def on_headers_complete(self) -> None:
        parser = self._parser
        status = parser.get_status_code()
        head = ResponseHead(
            status,
            self._headers,
            parser.should_keep_alive(),
            self._content_length,
            self._chunked,
        )
        if status < 200:
            # Interim responses (100 Continue) are swallowed: the final one follows.
            self._headers = []
            self._content_length = None
            self._chunked = False
            return
        if self._head is not None and not self._head.done():
            self._head.set_result(head)
        if self._head_only or status in (204, 304):
            # No body follows; llhttp cannot be told about HEAD, so do not reuse it.
            self.reusable = False
            if self._head_only:
                self._finish()
                self.close()

    def on_body(self, body: bytes) -> None:
        self.body_bytes += len(body)
        if self._sink is not None:
            self._sink(body)
        else:
            self._pending.append(body)

    def on_message_complete(self) -> None:
        if self._head_only:
            return
        self.reusable = self._parser.should_keep_alive()
        self._finish()

    # ---- exchange API --------------------------------------------------------------------
    def begin(self, data: bytes, head_only: bool) -> None:
        """Send the request head (and a buffered body) and start waiting for the answer."""
        self._headers = []
        self._content_length = None
        self._chunked = False
        self._pending = []
        self._sink = None
        self._got_bytes = False
        self._head_only = head_only
        self.reusable = False
        self.body_bytes = 0
        self._head = self._loop.create_future()
        self._complete = False
        self._error = None
        self._last_activity = now = time.monotonic()
        self.deadline = now + self._pool.read_timeout
        self.write(data)

    def write(self, data: bytes) -> None:
        if self._transport is not None and not self.closed:
            self._transport.write(data)

    def head(self) -> asyncio.Future[ResponseHead]:
        """The response head, to be awaited (a future, not a coroutine: no extra frame)."""
        assert self._head is not None
        return self._head

    def take_pending(self) -> list[bytes]:
        """Body chunks that arrived before a sink was set (they are handed over once)."""
        pending, self._pending = self._pending, []
        return pending

    def set_sink(self, sink: Callable[[bytes], None]) -> None:
        self._sink = sink
        pending, self._pending = self._pending, []
        for chunk in pending:
            sink(chunk)

    @property
    def finished(self) -> bool:
        """The whole response has arrived (or the exchange failed)."""
        return self._complete or self._error is not None

    @property
    def completed(self) -> bool:
        """The whole response has arrived and nothing failed: :meth:`done` would return."""
        return self._complete

    async def done(self) -> None:
        """Wait for the end of the response; raises the exchange's :class:`UpstreamError`."""
        assert self._head is not None
        if not (self._complete or self._error is not None):
            waiter = self._done_waiter = self._loop.create_future()
            try:
                await waiter
            finally:
                self._done_waiter = None
        if self._error is not None:
            raise self._error

    def pause_reading(self) -> None:
        if self._transport is not None and not self.closed:
            self._transport.pause_reading()

    def resume_reading(self) -> None:
        if self._transport is not None and not self.closed:
            self._transport.resume_reading()

    def close(self) -> None:
        self.reusable = False
        if self._transport is not None:
            self._transport.close()
        self.closed = True

    # ---- internals -----------------------------------------------------------------------
    def _finish(self) -> None:
        """The response ended well (the first outcome of an exchange wins)."""
        self.deadline = 0.0
        if self._head is not None and not self.finished:
            self._complete = True
            self._wake()

    def _end(self, error: UpstreamError) -> None:
        self.deadline = 0.0
        if not self.finished:
            self._error = error
            self._wake()
            self._wake_drain()

    def _wake(self) -> None:
        waiter = self._done_waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def _fail(self, error: UpstreamError) -> None:
        head = self._head
        if head is not None and not head.done():
            head.set_exception(error)
        if head is not None:
            self._end(error)
        self.deadline = 0.0
        self.close()

    def deadline_passed(self) -> None:
        """The read deadline passed (called by the loop's sweep): 504, unless bytes came."""
        if self._head is None or self.finished:
            return
        timeout = self._pool.read_timeout
        waited = time.monotonic() - self._last_activity
        if waited < timeout:
            self.deadline = self._last_activity + timeout
            return
        self._fail(
            UpstreamError(
                504, "upstream.timeout", f"The upstream did not answer within {timeout:g} s."
            )
        )


class UpstreamPool:
    """Keep-alive connections to one upstream address."""

    def __init__(
        self,
        host: str,
        port: int,
        *,
        connect_timeout: float,
        read_timeout: float,
        max_idle: int = 64,
        idle_timeout: float = 30.0,
        ssl_context: ssl.SSLContext | None = None,
        server_hostname: str | None = None,
        max_connections: int | None = None,
    ) -> None:
        self.host = host
        self.port = port
        self.ssl_context = ssl_context
        self.server_hostname = server_hostname
        self.max_connections = max_connections
        # Connections handed out and not yet back (least_connections reads its size);
        # ``connecting`` counts connects under way, for max_connections.
        self.active: set[UpstreamConnection] = set()
        self.connecting = 0
        self.connect_timeout = connect_timeout
        self.read_timeout = read_timeout
        self.max_idle = max_idle
        self.idle_timeout = idle_timeout
        self._idle: collections.deque[UpstreamConnection] = collections.deque()
        self._closed = False

    async def acquire(self) -> UpstreamConnection:
        return self.take_idle() or await self.connect()

    def take_idle(self) -> UpstreamConnection | None:
        """The most recently used idle connection that is still fit for use, if any."""
        idle = self._idle
        if not idle:
            return None
        now = time.monotonic()
        while idle:
            connection = idle.pop()
            if connection.closed:
                continue
            if now - connection.idle_since > self.idle_timeout:
                connection.close()
                continue
            connection.reused = True
            self.active.add(connection)
            return connection
        return None

    async def connect(self) -> UpstreamConnection:
        limit = self.max_connections
        if limit is not None and len(self.active) + self.connecting >= limit:
            raise UpstreamError(
                503,
                "upstream.pool_exhausted",
                f"The upstream already has {limit} connections in use.",
                retryable=True,
            )
        loop = asyncio.get_running_loop()
        self.connecting += 1
        try:
            _, protocol = await asyncio.wait_for(
                loop.create_connection(
                    lambda: UpstreamConnection(self),
                    self.host,
                    self.port,
                    ssl=self.ssl_context,
                    server_hostname=self.server_hostname if self.ssl_context else None,
                ),
                self.connect_timeout,
            )
        except ssl.SSLCertVerificationError as exc:
            raise UpstreamError(
                502,
                "upstream.tls_untrusted",
                "The upstream's TLS certificate was refused: "
                f"{exc.verify_message or 'verification failed'}.",
            ) from None
        except ssl.SSLError as exc:
            raise UpstreamError(
                502,
                "upstream.tls_failed",
                f"The TLS handshake with the upstream failed ({exc.reason or 'SSL error'}).",
            ) from None
        except TimeoutError:
            raise UpstreamError(
                502,
                "upstream.connect_timeout",
                f"The upstream did not accept a connection within {self.connect_timeout:g} s.",
            ) from None
        except OSError:
            raise UpstreamError(
                502, "upstream.connect_failed", "The upstream could not be reached."
            ) from None
        finally:
            self.connecting -= 1
        self.active.add(protocol)
        return protocol

    def release(self, connection: UpstreamConnection) -> None:
        self.active.discard(connection)
        if self._closed or not connection.reusable or connection.closed:
            connection.close()
            return
        if len(self._idle) >= self.max_idle:
            connection.close()
            return
        connection.idle_since = time.monotonic()
        self._idle.append(connection)

    def forget(self, connection: UpstreamConnection) -> None:
        # Idle ones are dropped lazily by take_idle(); one in use is no longer in use.
        self.active.discard(connection)

    def close(self) -> None:
        self._closed = True
        while self._idle:
            self._idle.pop().close()
