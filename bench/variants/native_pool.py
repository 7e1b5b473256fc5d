"""No framework at all: an HTTP/1.1 server on uvloop + asyncio.Protocol + httptools, forwarding
through the lean pool in ``_pool.py``.

This is the floor for a Python proxy on this machine: what is left is the event loop, the two
HTTP parsers, one task per request and building the bytes. Comparing it with the granian
variants shows what the server layer costs; comparing it with nginx shows what Python costs.

Run: ``DIJK_BENCH_UPSTREAM=http://127.0.0.1:8081 python -m bench.variants.native_pool --port 8000``

Scope, as for the pool: whole bodies, ``Content-Length`` responses, keep-alive, pipelined
requests answered in order, no ``Expect: 100-continue`` and no upgrades.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
from collections import deque
from http import HTTPStatus
from typing import NamedTuple, cast

import httptools
import uvloop

from bench.variants import NOT_FORWARDED_DOWN, NOT_FORWARDED_UP, upstream_address
from bench.variants._pool import Header, UpstreamError, UpstreamPool, UpstreamResponse

_UP = frozenset(name.encode("ascii") for name in NOT_FORWARDED_UP)
_DOWN = frozenset(name.encode("ascii") for name in NOT_FORWARDED_DOWN)
_STATUS_LINES = {
    status.value: f"HTTP/1.1 {status.value} {status.phrase}\r\n".encode("ascii")
    for status in HTTPStatus
}
_MAX_PIPELINED = 16
_BAD_REQUEST = (
    b"HTTP/1.1 400 Bad Request\r\ncontent-type: text/plain\r\n"
    b"content-length: 11\r\nconnection: close\r\n\r\nbad request"
)
_BAD_GATEWAY = UpstreamResponse(502, [(b"content-type", b"text/plain")], b"bad gateway")


class _Request(NamedTuple):
    method: bytes
    target: bytes
    headers: list[Header]
    body: bytes
    keep_alive: bool


class _ClientConnection(asyncio.Protocol):
    """One client connection: parse requests, forward them one at a time, answer in order."""

    def __init__(self, pool: UpstreamPool) -> None:
        self._pool = pool
        self._parser = httptools.HttpRequestParser(self)
        self._transport: asyncio.Transport | None = None
        self._url: list[bytes] = []
        self._headers: list[Header] = []
        self._body: list[bytes] = []
        self._pending: deque[_Request] = deque()
        self._busy = False
        self._reading_paused = False

    # asyncio.Protocol -------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports implement asyncio.Transport without subclassing it.
        self._transport = cast(asyncio.Transport, transport)

    def connection_lost(self, exc: Exception | None) -> None:
        self._transport = None
        self._pending.clear()

    def data_received(self, data: bytes) -> None:
        try:
            self._parser.feed_data(data)
        except (httptools.HttpParserError, httptools.HttpParserUpgrade):
            if self._transport is not None:
                self._transport.write(_BAD_REQUEST)
                self._transport.close()

    # httptools callbacks ----------------------------------------------------------------

    def on_message_begin(self) -> None:
        self._url = []
        self._headers = []
        self._body = []

    def on_url(self, url: bytes) -> None:
        self._url.append(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        if name.lower() not in _UP:
            self._headers.append((name, value))

    def on_body(self, body: bytes) -> None:
        self._body.append(body)

    def on_message_complete(self) -> None:
        request = _Request(
            self._parser.get_method(),
            b"".join(self._url),
            self._headers,
            b"".join(self._body),
            self._parser.should_keep_alive(),
        )
        if self._busy:
            self._pending.append(request)
            if len(self._pending) >= _MAX_PIPELINED and self._transport is not None:
                self._transport.pause_reading()
                self._reading_paused = True
            return
        self._busy = True
        asyncio.get_running_loop().create_task(self._serve(request))

    # forwarding -------------------------------------------------------------------------

    async def _serve(self, request: _Request) -> None:
        try:
            while True:
                try:
                    response = await self._pool.request(
                        request.method, request.target, request.headers, request.body
                    )
                except UpstreamError:
                    response = _BAD_GATEWAY
                transport = self._transport
                if transport is None:
                    return
                transport.write(_serialise(response, request.keep_alive))
                if not request.keep_alive:
                    transport.close()
                    return
                if not self._pending:
                    return
                request = self._pending.popleft()
                if self._reading_paused:
                    self._reading_paused = False
                    transport.resume_reading()
        finally:
            self._busy = False


def _serialise(response: UpstreamResponse, keep_alive: bool) -> bytes:
    status_line = _STATUS_LINES.get(response.status) or f"HTTP/1.1 {response.status} \r\n".encode()
    parts = [status_line]
    for name, value in response.headers:
        if name.lower() not in _DOWN:
            parts += (name, b": ", value, b"\r\n")
    parts += (b"content-length: ", str(len(response.body)).encode("ascii"), b"\r\n")
    if not keep_alive:
        parts.append(b"connection: close\r\n")
    parts += (b"\r\n", response.body)
    return b"".join(parts)


async def serve(host: str, port: int) -> None:
    """Serve until SIGTERM or SIGINT, then close the listener and the pool."""
    loop = asyncio.get_running_loop()
    pool = UpstreamPool(*upstream_address())
    server = await loop.create_server(
        lambda: _ClientConnection(pool), host, port, backlog=1024, reuse_address=True
    )
    stop = asyncio.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    try:
        await stop.wait()
    finally:
        server.close()
        await pool.close()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    arguments = parser.parse_args(argv)
    uvloop.run(serve(arguments.host, arguments.port))


if __name__ == "__main__":
    main()
