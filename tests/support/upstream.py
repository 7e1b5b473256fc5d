"""A recording HTTP/1.1 upstream for end-to-end tests, running in a background thread.

It records the raw bytes and the parsed requests it receives, so tests can assert what
the gateway forwarded, and, for refused requests, that nothing was forwarded at all.
Behaviour by path:

- ``/slow?s=N``      waits N seconds before answering
- ``/big?mb=N``      answers N MiB (Content-Length)
- ``/chunked?n=N``   answers N chunks with chunked encoding
- ``/status/NNN``    answers with that status
- ``/hang``          never answers
- anything else      200 JSON echo of method, target, headers and body length
"""

from __future__ import annotations

import asyncio
import json
import threading
from dataclasses import dataclass, field
from urllib.parse import parse_qs, urlsplit

import httptools


@dataclass
class Received:
    method: str
    target: str
    headers: list[tuple[str, str]]
    body: bytes = b""

    def header(self, name: str) -> str | None:
        for key, value in self.headers:
            if key == name:
                return value
        return None

    def header_values(self, name: str) -> list[str]:
        return [value for key, value in self.headers if key == name]


@dataclass
class _State:
    raw: bytearray = field(default_factory=bytearray)
    requests: list[Received] = field(default_factory=list)
    connections: int = 0


class _Protocol(asyncio.Protocol):
    def __init__(self, state: _State) -> None:
        self.state = state
        self.parser = httptools.HttpRequestParser(self)
        self.url = b""
        self.headers: list[tuple[str, str]] = []
        self.body = bytearray()
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.state.connections += 1

    def data_received(self, data: bytes) -> None:
        self.state.raw.extend(data)
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError:
            assert self.transport is not None
            self.transport.write(b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n\r\n")
            self.transport.close()

    def on_message_begin(self) -> None:
        self.url = b""
        self.headers = []
        self.body = bytearray()

    def on_url(self, url: bytes) -> None:
        self.url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers.append((name.decode("latin-1").lower(), value.decode("latin-1")))

    def on_body(self, body: bytes) -> None:
        self.body.extend(body)

    def on_message_complete(self) -> None:
        request = Received(
            self.parser.get_method().decode(),
            self.url.decode("latin-1"),
            self.headers,
            bytes(self.body),
        )
        self.state.requests.append(request)
        asyncio.get_running_loop().create_task(self.respond(request))

    async def respond(self, request: Received) -> None:
        transport = self.transport
        assert transport is not None
        parts = urlsplit(request.target)
        query = parse_qs(parts.query)
        path = parts.path
        if path == "/hang":
            return
        if path == "/slow":
            await asyncio.sleep(float(query.get("s", ["1"])[0]))
        if path == "/big":
            size = int(float(query.get("mb", ["1"])[0]) * 1024 * 1024)
            transport.write(
                b"HTTP/1.1 200 OK\r\ncontent-type: application/octet-stream\r\n"
                b"content-length: %d\r\n\r\n" % size
            )
            block = b"x" * 65536
            sent = 0
            while sent < size:
                piece = block[: min(65536, size - sent)]
                transport.write(piece)
                sent += len(piece)
                await asyncio.sleep(0)
            return
        if path == "/chunked":
            count = int(query.get("n", ["3"])[0])
            transport.write(
                b"HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ntransfer-encoding: chunked\r\n\r\n"
            )
            for index in range(count):
                data = b"chunk-%d\n" % index
                transport.write(b"%x\r\n%b\r\n" % (len(data), data))
            transport.write(b"0\r\n\r\n")
            return
        status = 200
        if path.startswith("/status/"):
            status = int(path.rsplit("/", 1)[1])
        body = json.dumps(
            {
                "method": request.method,
                "target": request.target,
                "headers": request.headers,
                "body_length": len(request.body),
            }
        ).encode()
        extra = b""
        if path == "/hop":
            extra = b"connection: x-secret-hop\r\nx-secret-hop: 1\r\nkeep-alive: timeout=5\r\n"
        no_body = status in (204, 304) or request.method == "HEAD"
        transport.write(
            b"HTTP/1.1 %d X\r\ncontent-type: application/json\r\n%bcontent-length: %d\r\n\r\n"
            % (status, extra, len(body))
            + (b"" if no_body else body)
        )


class RecordingUpstream:
    """Start with :meth:`start`; ``port``, ``requests`` and ``raw`` are then available."""

    def __init__(self) -> None:
        self.state = _State()
        self.port = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._server: asyncio.Server | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()

    @property
    def requests(self) -> list[Received]:
        return self.state.requests

    @property
    def raw(self) -> bytes:
        return bytes(self.state.raw)

    def reset(self) -> None:
        self.state.raw.clear()
        self.state.requests.clear()

    def start(self) -> RecordingUpstream:
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("recording upstream did not start")
        return self

    def _run(self) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop

        async def main() -> None:
            self._server = await loop.create_server(lambda: _Protocol(self.state), "127.0.0.1", 0)
            self.port = self._server.sockets[0].getsockname()[1]
            self._ready.set()

        loop.run_until_complete(main())
        loop.run_forever()
        loop.close()

    def stop(self) -> None:
        loop = self._loop
        if loop is None:
            return

        def shutdown() -> None:
            if self._server is not None:
                self._server.close()
            loop.stop()

        loop.call_soon_threadsafe(shutdown)
        if self._thread is not None:
            self._thread.join(5)
