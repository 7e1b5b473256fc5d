"""Global load shedding (priority 9500, before anything else on a route).

When the gateway is past what it can serve well, refusing new work quickly keeps the work
already admitted fast, instead of letting every request slow down until all time out.
Two signals, each with its own threshold in ``overload``:

- requests in flight on this process (counted here: taken on the way in, given back in the
  log phase, which always runs);
- event-loop lag: a timer that should fire every 100 ms measures how late it runs. Lag
  means the one event loop is saturated (CPU-bound work, a blocking call), so even cheap
  requests would wait.

Requests in flight are the requests that are *ready*: their body has arrived whole (or they
have none). A request whose body is still arriving is an upload: the server caps uploads
on their own (``limits.max_uploads``, per address too), and this stage counts it only once
its last byte is in (:func:`body_arrived`). So clients that open uploads and stall cannot
use up the in-flight budget. An upload is still shed while the ready requests use all but
``ready_reserve`` of ``max_in_flight``: completing uploads never crowd out the last slots.

Past a threshold the answer is 503 ``overload.shed`` with ``Retry-After``. Health endpoints
live on the admin listener and never pass through this stage, so they keep answering.
The monitor belongs to the process (one per event loop), not to a configuration: a reload
keeps its counts.
"""

from __future__ import annotations

import asyncio
import weakref
from typing import ClassVar

from prometheus_client import Counter, Gauge

from dijk.config.models import OverloadConfig
from dijk.metrics import REGISTRY
from dijk.pipeline.context import RequestContext
from dijk.pipeline.decision import Decision
from dijk.pipeline.stage import Phase, Stage

_SAMPLE_S = 0.1
_ANNOTATION = "load_shed_counted"
_WAITING = "load_shed_waiting_for_body"

SHED = Counter(
    "dijk_overload_shed",
    "Requests refused by load shedding, by cause (in_flight, ready_reserve: an upload while "
    "the rest of max_in_flight is in use, event_loop_lag).",
    ("cause",),
    registry=REGISTRY,
)
LOOP_LAG = Gauge(
    "dijk_event_loop_lag_seconds",
    "How late the last event-loop timer ran (sampled every 100 ms while shedding is on).",
    registry=REGISTRY,
)


class LoadMonitor:
    """In-flight count and event-loop lag of one event loop."""

    _by_loop: ClassVar[weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, LoadMonitor]] = (
        weakref.WeakKeyDictionary()
    )

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.in_flight = 0
        self.lag_s = 0.0
        self._loop = loop
        self._expected = 0.0
        self._timer: asyncio.TimerHandle | None = None

    @classmethod
    def for_running_loop(cls) -> LoadMonitor:
        loop = asyncio.get_running_loop()
        monitor = cls._by_loop.get(loop)
        if monitor is None:
            monitor = cls._by_loop[loop] = cls(loop)
        return monitor

    def watch_lag(self) -> None:
        """Start sampling the loop's lag (idempotent)."""
        if self._timer is None and not self._loop.is_closed():
            self._schedule()

    def _schedule(self) -> None:
        self._expected = self._loop.time() + _SAMPLE_S
        self._timer = self._loop.call_at(self._expected, self._sample)

    def _sample(self) -> None:
        self.lag_s = max(0.0, self._loop.time() - self._expected)
        LOOP_LAG.set(self.lag_s)
        self._schedule()


class LoadShedStage(Stage):
    name: ClassVar[str] = "load_shed"
    priority: ClassVar[int] = 9500
    phases: ClassVar[frozenset[Phase]] = frozenset({Phase.REQUEST_HEADERS, Phase.LOG})

    def __init__(self, config: OverloadConfig, monitor: LoadMonitor | None = None) -> None:
        self._max_in_flight = config.max_in_flight
        # Uploads are shed while the ready requests fill this much of max_in_flight.
        # (At least one: with a tiny max_in_flight an idle gateway still takes an upload.)
        self._upload_ceiling = max(1, int(config.max_in_flight * (1 - config.ready_reserve)))
        self._max_lag = config.max_event_loop_lag_s
        self._retry = (("Retry-After", str(config.retry_after_s)),)
        self._retry_s = config.retry_after_s
        self._monitor = monitor

    def _get_monitor(self) -> LoadMonitor:
        monitor = self._monitor
        if monitor is None:
            monitor = self._monitor = LoadMonitor.for_running_loop()
            if self._max_lag > 0:
                monitor.watch_lag()
        return monitor

    async def request_headers(self, ctx: RequestContext) -> Decision | None:
        monitor = self._get_monitor()
        cause = None
        if self._max_in_flight:
            if monitor.in_flight >= self._max_in_flight:
                cause = "in_flight"
            elif ctx.body_pending and monitor.in_flight >= self._upload_ceiling:
                cause = "ready_reserve"
        if cause is None and self._max_lag and monitor.lag_s > self._max_lag:
            cause = "event_loop_lag"
        if cause is not None:
            SHED.labels(cause).inc()
            return Decision.deny(
                503,
                "overload.shed",
                "The gateway is overloaded and shed this request; retry later.",
                self._retry,
                retry_after_s=self._retry_s,
            )
        if ctx.body_pending:
            ctx.annotations[_WAITING] = monitor  # counted when the body is in
            return None
        monitor.in_flight += 1
        ctx.annotations[_ANNOTATION] = monitor
        return None

    async def log(self, ctx: RequestContext) -> None:
        ctx.annotations.pop(_WAITING, None)
        monitor = ctx.annotations.pop(_ANNOTATION, None)
        if isinstance(monitor, LoadMonitor):
            monitor.in_flight -= 1


def body_arrived(ctx: RequestContext) -> None:
    """The body of an admitted upload is complete: from now on it is a request in flight.

    Counted without a check: it was admitted, and its body may already be on its way to
    the upstream, so refusing it now would waste (or half-send) the work.
    """
    monitor = ctx.annotations.pop(_WAITING, None)
    if isinstance(monitor, LoadMonitor):
        monitor.in_flight += 1
        ctx.annotations[_ANNOTATION] = monitor
