"""The gateway's inventory: a learner in memory, merged into the database periodically.

The discovery stages hand exchanges to :class:`DiscoveryRecorder` (memory only, no I/O on
the request path). A background task takes what was learnt since the last flush every
``flush_interval_s`` (and once more on close) and merges it into the inventory tables
(:mod:`dijk.discovery.db`) that every gateway of the fleet shares. If the database is
down, the endpoints stay in memory (bounded like everything the learner holds: the least
recently seen are evicted and counted) until a flush succeeds.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable

import structlog

from dijk import metrics
from dijk.discovery.db import DiscoveryDatabase
from dijk.discovery.inventory import Endpoint, Exchange, Learner, LearnerLimits
from dijk.discovery.settings import DiscoverySettings
from dijk.flushing import PeriodicWriter

__all__ = ["DiscoveryRecorder", "limits_from"]

log = structlog.get_logger("dijk.discovery")


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


class DiscoveryRecorder(PeriodicWriter[DiscoveryDatabase]):
    """Shared by the discovery stages of one configuration (see the module docstring)."""

    def __init__(
        self, settings: DiscoverySettings, database: Callable[[], DiscoveryDatabase]
    ) -> None:
        super().__init__(database, settings.flush_interval_s, name="discovery", logger=log)
        self.settings = settings
        self.learner = Learner(limits_from(settings))
        self._shadow: set[tuple[str, str]] = set()
        self._evicted_flushed = 0
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

    @property
    def pending(self) -> int:
        return len(self.learner)

    async def _write(self) -> bool:
        metrics.DISCOVERY_ENDPOINTS.set(self.learner.seen_endpoints)
        evicted = self.learner.evicted - self._evicted_flushed
        taken: list[Endpoint] = self.learner.take()
        if not taken and not evicted:
            return True
        try:
            database = await self._connected()
            await database.write(taken, evicted)
        except Exception as exc:  # the database is down or refused: keep the endpoints
            self.learner.restore(taken)
            await self._failed(exc)
            return False
        self._evicted_flushed += evicted
        self.flushes += 1
        return True

    def retain(self) -> None:
        self._users += 1

    async def release(self) -> None:
        self._users -= 1
        if self._users <= 0:
            with contextlib.suppress(Exception):
                await self.close()
