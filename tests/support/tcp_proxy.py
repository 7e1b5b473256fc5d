"""A loopback TCP forwarder that can be cut and restored: a database outage on demand.

:class:`TcpProxy` runs on the caller's event loop (async tests); :class:`ThreadedTcpProxy`
runs one in its own thread, for tests that drive a gateway process synchronously. Cutting
aborts every open connection and closes the listening socket (new connections are
refused); restoring listens on the same port again.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from concurrent.futures import Future


class TcpProxy:
    """A loopback TCP forwarder that can be switched off and on (a database outage)."""

    def __init__(self, host: str, port: int):
        self.target = (host, port)
        self.port = 0
        self.server: asyncio.Server | None = None
        self.transports: list[asyncio.StreamWriter] = []

    async def start(self) -> None:
        self.server = await asyncio.start_server(self._handle, "127.0.0.1", self.port)
        self.port = self.server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        assert self.server is not None
        self.server.close()
        for writer in self.transports:
            writer.transport.abort()
        self.transports.clear()
        self.server = None

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            upstream_reader, upstream_writer = await asyncio.open_connection(*self.target)
        except OSError:
            writer.transport.abort()
            return
        self.transports += [writer, upstream_writer]

        async def pipe(source: asyncio.StreamReader, target: asyncio.StreamWriter) -> None:
            with contextlib.suppress(OSError, asyncio.IncompleteReadError):
                while data := await source.read(65536):
                    target.write(data)
                    await target.drain()
            target.transport.abort()

        await asyncio.gather(pipe(reader, upstream_writer), pipe(upstream_reader, writer))


class ThreadedTcpProxy:
    """A :class:`TcpProxy` on its own event loop thread, controlled synchronously."""

    def __init__(self, host: str, port: int) -> None:
        self.proxy = TcpProxy(host, port)
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._thread.start()

    @property
    def port(self) -> int:
        return self.proxy.port

    def _run(self, coroutine: object) -> None:
        future: Future[None] = asyncio.run_coroutine_threadsafe(coroutine, self._loop)  # type: ignore[arg-type]
        future.result(timeout=10)

    def start(self) -> None:
        self._run(self.proxy.start())

    def stop(self) -> None:
        if self.proxy.server is not None:
            self._run(self.proxy.stop())

    def close(self) -> None:
        self.stop()
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
