"""Running the gateway in this process (shared by ``dijk serve`` and ``dijk demo``)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import uvloop

from dijk.config import DijkConfig
from dijk.proxy.server import GatewayServer


def run_gateway(
    config: DijkConfig,
    source: str,
    loader: Callable[[], DijkConfig] | None = None,
    on_started: Callable[[GatewayServer], Awaitable[None] | None] | None = None,
) -> None:
    """Serve until SIGTERM/SIGINT; SIGHUP reloads."""

    async def main() -> None:
        server = GatewayServer(config, source, loader)
        await server.start()
        if on_started is not None:
            result = on_started(server)
            if asyncio.iscoroutine(result):
                await result
        await server.serve_forever()

    uvloop.run(main())
