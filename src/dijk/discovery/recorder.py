"""The gateway's inventory: a learner in memory, merged into the database periodically.

The discovery stages hand exchanges to :class:`DiscoveryRecorder` (memory only, no I/O on
the request path). A background task takes what was learnt since the last flush every
``flush_interval_s`` (and once more on close) and merges it into the inventory tables
(:mod:`dijk.discovery.db`) that every gateway of the fleet shares. If the database is
down, the endpoints stay in memory (bounded like everything the learner holds: the least
recently seen are evicted and counted) until a flush succeeds.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from typing import Final

import structlog

from dijk import metrics
from dijk.discovery.db import DiscoveryDatabase
from dijk.discovery.inventory import Endpoint, Exchange, Learner, LearnerLimits
from dijk.discovery.settings import DiscoverySettings

__all__ = ["DiscoveryRecorder", "limits_from"]

log = structlog.get_logger("dijk.discovery")

_ERROR_LOG_INTERVAL_S: Final = 60.0


def limits_from(settings: DiscoverySettings) -> LearnerLimits:
    return LearnerLimits(
        max_endpoints=settings.max_endpoints,
        max_endpoint_bytes=settings.max_endpoint_kib * 1024,
        max_total_bytes=settings.max_memory_mib * 1024 * 1024,
        max_tree_nodes=settings.max_path_nodes,
        ambiguous_limit=settings.ambiguous_limit,
        sample_first=settings.sample_first,
        sample_every=settings.sample_every,
        max_body_bytes=settings.max_body_bytes,
    )


class DiscoveryRecorder:
    """Shared by the discovery stages of one configuration (see the module docstring)."""

    def __init__(
        self, settings: DiscoverySettings, database: Callable[[], DiscoveryDatabase]
    ) -> None:
        self.settings = settings
        self.learner = Learner(limits_from(settings))
        self._database_factory = database
        self._database: DiscoveryDatabase | None = None
        self._interval = settings.flush_interval_s
        self._shadow: set[tuple[str, str]] = set()
        self._evicted_flushed = 0
        self.flushes = 0
        self.failures = 0
        self._task: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()
        self._lock = asyncio.Lock()
        self._closed = False
        self._last_error_log = 0.0
        self._users = 0

    # -- the request path: memory only ---------------------------------------------------

    def key(self, method: str, path: str, template: str | None) -> tuple[str, str]:
        return self.learner.key(method, path, template)

    def wants_sample(self, key: tuple[str, str]) -> bool:
        return self.learner.wants_sample(key)

    def record(self, key: tuple[str, str], exchange: Exchange, *, sampled: bool) -> None:
        if self._closed:
            return
        self._ensure_task()
        learner = self.learner
        evicted, seen = learner.evicted, learner.seen_endpoints
        learner.record(key, exchange, sampled=sampled)
        if learner.seen_endpoints != seen:
            metrics.DISCOVERY_ENDPOINTS.set(learner.seen_endpoints)
        shadow = self._shadow
        if exchange.declared is False and key not in shadow:
            shadow.add(key)
            if len(shadow) > learner.limits.max_endpoints:
                shadow.pop()
            metrics.DISCOVERY_SHADOW.set(len(shadow))
        if learner.evicted != evicted:
            metrics.DISCOVERY_EVICTED.inc(learner.evicted - evicted)

    @property
    def endpoints_seen(self) -> int:
        return self.learner.seen_endpoints

    @property
    def shadow(self) -> int:
        return len(self._shadow)

    # -- flushing ------------------------------------------------------------------------

    def _ensure_task(self) -> None:
        if self._task is not None:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # not in a loop (unit tests call flush() themselves)
            return
        self._task = loop.create_task(self._run(), name="dijk-discovery")

    async def _run(self) -> None:
        while not self._closed:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self._interval)
            if self._closed:
                return
            await self.flush()

    async def flush(self) -> bool:
        """Merge what was learnt since the last flush; True if written (or nothing to)."""
        async with self._lock:
            metrics.DISCOVERY_ENDPOINTS.set(self.learner.seen_endpoints)
            evicted = self.learner.evicted - self._evicted_flushed
            taken: list[Endpoint] = self.learner.take()
            if not taken and not evicted:
                return True
            try:
                database = await self._connected()
                await database.write(taken, evicted)
            except Exception as exc:  # the database is down or refused: keep the endpoints
                self.failures += 1
                self.learner.restore(taken)
                await self._drop_connection()
                self._log_failure(exc)
                return False
            self._evicted_flushed += evicted
            self.flushes += 1
            return True

    async def _connected(self) -> DiscoveryDatabase:
        if self._database is None:
            database = self._database_factory()
            await database.connect(create=True)
            self._database = database
        return self._database

    async def _drop_connection(self) -> None:
        database, self._database = self._database, None
        if database is not None:
            with contextlib.suppress(Exception):
                await database.close()

    def _log_failure(self, exc: Exception) -> None:
        now = time.monotonic()
        if now - self._last_error_log < _ERROR_LOG_INTERVAL_S and self.failures > 1:
            return
        self._last_error_log = now
        log.warning(
            "discovery_flush_failed",
            error=type(exc).__name__,
            endpoints_pending=len(self.learner),
            failures=self.failures,
        )

    def retain(self) -> None:
        self._users += 1

    async def release(self) -> None:
        self._users -= 1
        if self._users <= 0:
            with contextlib.suppress(Exception):
                await self.close()

    async def close(self) -> None:
        """Stop the timer, write what is pending, close the connection."""
        if self._closed:
            return
        self._closed = True
        self._wake.set()
        task, self._task = self._task, None
        if task is not None:
            await task
        if not await self.flush():
            log.error("discovery_lost_on_close", endpoints=len(self.learner))
        await self._drop_connection()
