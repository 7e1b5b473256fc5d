"""Active health checks: one task per upstream with ``health_check``, started with its state.

Every ``interval_s`` each target gets ``GET <path>`` on a fresh connection (TLS as for
requests: same CA bundle, SNI, client certificate), ``Connection: close``, answered within
``timeout_s``. A status in ``expected_status`` passes. ``unhealthy_after`` failures in a row
mark the target down (the balancer stops sending to it), ``healthy_after`` passes bring it
back. Transitions are logged. The tasks end when the state closes (a reload starts new
ones, which begin from "up": a target that is down is found again within the first
``unhealthy_after`` checks).
"""

from __future__ import annotations

import asyncio
import contextlib
from urllib.parse import urlsplit

import structlog

from dijk.config.models import HealthCheckConfig
from dijk.proxy.balancer import Balancer, Endpoint

log = structlog.get_logger("dijk.upstream")


class HealthChecker:
    def __init__(self, balancer: Balancer, config: HealthCheckConfig) -> None:
        self.balancer = balancer
        self.config = config
        self._task: asyncio.Task[None] | None = None
        self._passes: dict[int, int] = {}
        self._fails: dict[int, int] = {}

    def start(self) -> None:
        self._task = asyncio.ensure_future(self._run())

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _run(self) -> None:
        while True:
            await asyncio.gather(*(self.check(e) for e in self.balancer.endpoints))
            await asyncio.sleep(self.config.interval_s)

    async def check(self, endpoint: Endpoint) -> None:
        problem = await self._probe(endpoint)
        key = id(endpoint)
        if problem is None:
            self._fails[key] = 0
            self._passes[key] = self._passes.get(key, 0) + 1
            if endpoint.down and self._passes[key] >= self.config.healthy_after:
                endpoint.down = False
                log.info("upstream_target_up", upstream=self.balancer.name, target=endpoint.url)
        else:
            self._passes[key] = 0
            self._fails[key] = self._fails.get(key, 0) + 1
            if not endpoint.down and self._fails[key] >= self.config.unhealthy_after:
                endpoint.down = True
                log.warning(
                    "upstream_target_down",
                    upstream=self.balancer.name,
                    target=endpoint.url,
                    problem=problem,
                )

    async def _probe(self, endpoint: Endpoint) -> str | None:
        """None when healthy, else what went wrong (for the log)."""
        pool = endpoint.pool
        host = urlsplit(endpoint.url).netloc
        request = (
            f"GET {self.config.path} HTTP/1.1\r\nHost: {host}\r\n"
            "User-Agent: dijk-health-check\r\nConnection: close\r\n\r\n"
        ).encode("latin-1")
        writer: asyncio.StreamWriter | None = None
        try:
            async with asyncio.timeout(self.config.timeout_s):
                reader, writer = await asyncio.open_connection(
                    pool.host,
                    pool.port,
                    ssl=pool.ssl_context,
                    server_hostname=pool.server_hostname if pool.ssl_context else None,
                )
                writer.write(request)
                line = await reader.readline()
        except TimeoutError:
            return f"no answer within {self.config.timeout_s:g} s"
        except OSError as exc:  # refused, reset, TLS (ssl.SSLError is an OSError)
            return type(exc).__name__
        finally:
            if writer is not None:
                writer.close()
        parts = line.split(b" ", 2)
        if len(parts) < 2 or not parts[0].startswith(b"HTTP/1.") or not parts[1].isdigit():
            return "not an HTTP response"
        status = int(parts[1])
        if status not in self.config.expected_status:
            return f"status {status}"
        return None
