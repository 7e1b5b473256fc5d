"""granian (RSGI interface) in front, the lean httptools pool from ``_pool.py`` behind.

Run: ``DIJK_BENCH_UPSTREAM=http://127.0.0.1:8081 python -m granian --interface rsgi
--loop uvloop --workers 1 --port 8000 bench.variants.rsgi_pool:app``
"""

from __future__ import annotations

import asyncio
from typing import Any

from bench.variants import NOT_FORWARDED_DOWN, NOT_FORWARDED_UP, rsgi_target, upstream_address
from bench.variants._pool import UpstreamError, UpstreamPool

_DOWN = frozenset(name.encode("ascii") for name in NOT_FORWARDED_DOWN)


class App:
    """RSGI application object; granian calls ``__rsgi_init__`` once per worker."""

    def __init__(self) -> None:
        self._pool: UpstreamPool | None = None

    def __rsgi_init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._pool = UpstreamPool(*upstream_address())

    def __rsgi_del__(self, loop: asyncio.AbstractEventLoop) -> None:
        if self._pool is not None:
            loop.run_until_complete(self._pool.close())

    async def __rsgi__(self, scope: Any, protocol: Any) -> None:
        assert self._pool is not None
        body = await protocol()
        target = rsgi_target(scope)
        headers = [
            (name.encode("latin-1"), value.encode("latin-1"))
            for name, value in scope.headers.items()
            if name not in NOT_FORWARDED_UP
        ]
        try:
            response = await self._pool.request(
                scope.method.encode("ascii"), target.encode("latin-1"), headers, body
            )
        except UpstreamError:
            protocol.response_bytes(502, [("content-type", "text/plain")], b"bad gateway")
            return
        protocol.response_bytes(
            response.status,
            [
                (name.decode("latin-1"), value.decode("latin-1"))
                for name, value in response.headers
                if name.lower() not in _DOWN
            ],
            response.body,
        )


app = App()
