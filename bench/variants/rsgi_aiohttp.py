"""granian (RSGI interface) in front, one shared ``aiohttp.ClientSession`` behind.

Run: ``DIJK_BENCH_UPSTREAM=http://127.0.0.1:8081 python -m granian --interface rsgi
--loop uvloop --workers 1 --port 8000 bench.variants.rsgi_aiohttp:app``
"""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp
from yarl import URL

from bench.variants import NOT_FORWARDED_DOWN, NOT_FORWARDED_UP, rsgi_target, upstream_address
from bench.variants.asgi_aiohttp import new_session

_DOWN = frozenset(name.encode("ascii") for name in NOT_FORWARDED_DOWN)


class App:
    """RSGI application object; the session is made on the worker's loop at start."""

    def __init__(self) -> None:
        self._session: aiohttp.ClientSession | None = None
        self._base = ""

    def __rsgi_init__(self, loop: asyncio.AbstractEventLoop) -> None:
        host, port = upstream_address()
        self._base = f"http://{host}:{port}"
        self._session = loop.run_until_complete(new_session())

    def __rsgi_del__(self, loop: asyncio.AbstractEventLoop) -> None:
        if self._session is not None:
            loop.run_until_complete(self._session.close())

    async def __rsgi__(self, scope: Any, protocol: Any) -> None:
        assert self._session is not None
        body = await protocol()
        target = rsgi_target(scope)
        headers = [
            (name, value) for name, value in scope.headers.items() if name not in NOT_FORWARDED_UP
        ]
        try:
            async with self._session.request(
                scope.method,
                URL(self._base + target, encoded=True),
                headers=headers,
                data=body or None,
                allow_redirects=False,
            ) as response:
                response_body = await response.read()
                status = response.status
                raw_headers = response.raw_headers
        except (aiohttp.ClientError, TimeoutError):
            protocol.response_bytes(502, [("content-type", "text/plain")], b"bad gateway")
            return
        protocol.response_bytes(
            status,
            [
                (name.decode("latin-1"), value.decode("latin-1"))
                for name, value in raw_headers
                if name.lower() not in _DOWN
            ],
            response_body,
        )


app = App()
