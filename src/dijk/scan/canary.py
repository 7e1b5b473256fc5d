"""A local HTTP listener (127.0.0.1 unless ``--canary-address`` says otherwise) that notes
which probe tokens the target fetched.

SSRF probes put ``http://127.0.0.1:<port>/dijk-canary/<token>`` into URL parameters; a
request for that path arriving here is proof that the target fetched it. The listener
answers every request with a small fixed body and keeps at most :data:`MAX_HITS` hits.
"""

from __future__ import annotations

import asyncio
import socket
import time
from dataclasses import dataclass

from aiohttp import web

__all__ = ["Canary", "CanaryHit"]

MAX_HITS = 1000
PREFIX = "/dijk-canary/"


@dataclass(frozen=True, slots=True)
class CanaryHit:
    token: str
    method: str
    path: str
    user_agent: str
    at: float


class Canary:
    def __init__(self, host: str = "127.0.0.1") -> None:
        self.host = host
        self.hits: dict[str, CanaryHit] = {}
        self.port = 0
        self._runner: web.AppRunner | None = None
        self._arrived = asyncio.Event()

    async def start(self) -> None:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.bind((self.host, 0))
        self.port = int(sock.getsockname()[1])
        await web.SockSite(self._runner, sock).start()

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    def url(self, token: str) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}{PREFIX}{token}"

    async def _handle(self, request: web.Request) -> web.Response:
        if request.path.startswith(PREFIX) and len(self.hits) < MAX_HITS:
            token = request.path[len(PREFIX) :].split("/", 1)[0]
            self.hits.setdefault(
                token,
                CanaryHit(
                    token,
                    request.method,
                    request.path,
                    request.headers.get("User-Agent", "")[:200],
                    time.time(),
                ),
            )
            self._arrived.set()
        return web.Response(text="dijk canary")

    async def wait_for(self, token: str, timeout_s: float) -> CanaryHit | None:
        deadline = time.monotonic() + timeout_s
        while token not in self.hits:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return None
            self._arrived.clear()
            try:
                await asyncio.wait_for(self._arrived.wait(), min(remaining, 0.2))
            except TimeoutError:
                continue
        return self.hits[token]
