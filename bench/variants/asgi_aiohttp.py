"""granian (ASGI interface) in front, one shared ``aiohttp.ClientSession`` behind.

This is the most ordinary way to write a Python proxy today, hence the baseline the others
are read against.

Run: ``DIJK_BENCH_UPSTREAM=http://127.0.0.1:8081 python -m granian --interface asgi
--loop uvloop --workers 1 --port 8000 bench.variants.asgi_aiohttp:app``
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
from yarl import URL

from bench.variants import NOT_FORWARDED_DOWN, NOT_FORWARDED_UP, upstream_address

Scope = dict[str, Any]
Message = dict[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

_UP = frozenset(name.encode("ascii") for name in NOT_FORWARDED_UP)
_DOWN = frozenset(name.encode("ascii") for name in NOT_FORWARDED_DOWN)
_BAD_GATEWAY_HEADERS = [(b"content-type", b"text/plain"), (b"content-length", b"11")]


async def new_session() -> aiohttp.ClientSession:
    """The shared client: keep-alive, up to 256 connections, nothing a proxy must not do.

    The cookie jar is a dummy (a proxy that stored upstream cookies would hand one client's
    cookies to the next) and aiohttp's automatic request headers and decompression are off
    so that requests and bodies pass through unchanged.
    """
    return aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=256, keepalive_timeout=60.0),
        cookie_jar=aiohttp.DummyCookieJar(),
        skip_auto_headers=("User-Agent", "Accept", "Accept-Encoding"),
        auto_decompress=False,
        timeout=aiohttp.ClientTimeout(total=30.0, connect=2.0),
    )


class _State:
    session: aiohttp.ClientSession | None = None
    base = ""


async def app(scope: Scope, receive: Receive, send: Send) -> None:
    if scope["type"] == "lifespan":
        await _lifespan(receive, send)
    elif scope["type"] == "http":
        await _forward(scope, receive, send)


async def _lifespan(receive: Receive, send: Send) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            host, port = upstream_address()
            _State.base = f"http://{host}:{port}"
            _State.session = await new_session()
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            if _State.session is not None:
                await _State.session.close()
            await send({"type": "lifespan.shutdown.complete"})
            return


async def _read_body(receive: Receive) -> bytes:
    chunks = []
    while True:
        message = await receive()
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            return b"".join(chunks)


async def _forward(scope: Scope, receive: Receive, send: Send) -> None:
    session = _State.session
    assert session is not None, "granian must run the ASGI lifespan"
    body = await _read_body(receive)
    target = scope["raw_path"] or scope["path"].encode("utf-8")
    if scope["query_string"]:
        target += b"?" + scope["query_string"]
    headers = [
        (name.decode("latin-1"), value.decode("latin-1"))
        for name, value in scope["headers"]
        if name not in _UP
    ]
    try:
        async with session.request(
            scope["method"],
            URL(_State.base + target.decode("latin-1"), encoded=True),
            headers=headers,
            data=body or None,
            allow_redirects=False,
        ) as response:
            response_body = await response.read()
            status = response.status
            raw_headers = response.raw_headers
    except (aiohttp.ClientError, TimeoutError):
        await send({"type": "http.response.start", "status": 502, "headers": _BAD_GATEWAY_HEADERS})
        await send({"type": "http.response.body", "body": b"bad gateway"})
        return
    response_headers = [
        (name.lower(), value) for name, value in raw_headers if name.lower() not in _DOWN
    ]
    response_headers.append((b"content-length", str(len(response_body)).encode("ascii")))
    await send({"type": "http.response.start", "status": status, "headers": response_headers})
    await send({"type": "http.response.body", "body": response_body})
