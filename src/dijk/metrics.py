"""Prometheus metrics of the gateway (all names start with ``dijk_``).

The metrics touched on every request (requests, latencies, requests in flight, open
connections, protocol errors) are kept by a small lock-free collector of our own: plain
ints and floats that only the event loop thread updates, turned into Prometheus families
when ``/metrics`` is scraped. prometheus-client's own metrics take a lock and validate on
every update (about seven locked updates per request); ours cost a dict lookup and an
addition. Names, types, labels, buckets and the ``_created`` samples are exactly what
prometheus-client's ``Counter``/``Histogram``/``Gauge`` would expose.

Rare events (stage faults, reloads, the configuration generation) keep prometheus-client's
own metrics. Other modules register their metrics in :data:`REGISTRY`.

Thread safety: updates happen on the event loop only; a scrape from another thread (none
today: the admin listener runs in the same loop) would read consistent-enough values, since
it copies each dict under the GIL before formatting.
"""

from __future__ import annotations

import os
import time
from bisect import bisect_left
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import orjson
from prometheus_client import CollectorRegistry, Counter, Gauge, generate_latest
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString

REGISTRY = CollectorRegistry(auto_describe=True)

_LATENCY_BUCKETS = (
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    30.0,
)


class LoopCounter:
    """A labelled counter of plain floats, updated from the event loop without a lock."""

    __slots__ = ("_created", "documentation", "labelnames", "name", "values")

    def __init__(self, name: str, documentation: str, labelnames: tuple[str, ...]) -> None:
        self.name = name
        self.documentation = documentation
        self.labelnames = labelnames
        self.values: dict[tuple[str, ...], float] = {}
        self._created: dict[tuple[str, ...], float] = {}

    def inc_key(self, key: tuple[str, ...], amount: float = 1.0) -> None:
        """Add to the child with these label values (in ``labelnames`` order)."""
        values = self.values
        if key in values:
            values[key] += amount
        else:
            values[key] = amount
            self._created[key] = time.time()

    def labels(self, *values: str) -> _CounterChild:
        if len(values) != len(self.labelnames):
            raise ValueError(f"{self.name}: expected labels {self.labelnames}")
        return _CounterChild(self, tuple(str(value) for value in values))

    def collect(self) -> Metric:
        metric = Metric(self.name, self.documentation, "counter")
        created = self._created
        for key, value in list(self.values.items()):
            labels = dict(zip(self.labelnames, key, strict=True))
            metric.add_sample(self.name + "_total", labels, value)
            metric.add_sample(self.name + "_created", labels, created.get(key, 0.0))
        return metric


class _CounterChild:
    __slots__ = ("_counter", "_key")

    def __init__(self, counter: LoopCounter, key: tuple[str, ...]) -> None:
        self._counter = counter
        self._key = key

    def inc(self, amount: float = 1.0) -> None:
        if amount < 0:
            raise ValueError("counters only go up")
        self._counter.inc_key(self._key, amount)


class HistogramChild:
    """One label set of a :class:`LoopHistogram`: per-bucket counts (not cumulative), sum."""

    __slots__ = ("_bounds", "counts", "created", "sum")

    def __init__(self, bounds: tuple[float, ...]) -> None:
        self._bounds = bounds
        self.counts = [0] * len(bounds)
        self.sum = 0.0
        self.created = time.time()

    def observe(self, value: float) -> None:
        # The first bucket whose upper bound is >= value (the last bound is +Inf).
        self.counts[bisect_left(self._bounds, value)] += 1
        self.sum += value


class LoopHistogram:
    """A labelled histogram with fixed buckets, updated from the event loop without a lock."""

    __slots__ = ("_le", "bounds", "children", "documentation", "labelnames", "name")

    def __init__(
        self,
        name: str,
        documentation: str,
        labelnames: tuple[str, ...],
        buckets: Iterable[float],
    ) -> None:
        self.name = name
        self.documentation = documentation
        self.labelnames = labelnames
        self.bounds = (*sorted(buckets), float("inf"))
        self.children: dict[tuple[str, ...], HistogramChild] = {}
        # The "le" label values exactly as prometheus-client spells them ("0.005", "+Inf").
        self._le = tuple(floatToGoString(bound) for bound in self.bounds)  # type: ignore[no-untyped-call]

    def child(self, key: tuple[str, ...]) -> HistogramChild:
        found = self.children.get(key)
        if found is None:
            found = self.children[key] = HistogramChild(self.bounds)
        return found

    def labels(self, *values: str) -> HistogramChild:
        if len(values) != len(self.labelnames):
            raise ValueError(f"{self.name}: expected labels {self.labelnames}")
        return self.child(tuple(str(value) for value in values))

    def collect(self) -> Metric:
        metric = Metric(self.name, self.documentation, "histogram")
        for key, child in list(self.children.items()):
            labels = dict(zip(self.labelnames, key, strict=True))
            cumulative = 0
            for le, count in zip(self._le, list(child.counts), strict=True):
                cumulative += count
                metric.add_sample(self.name + "_bucket", {**labels, "le": le}, cumulative)
            metric.add_sample(self.name + "_count", labels, cumulative)
            metric.add_sample(self.name + "_sum", labels, child.sum)
            metric.add_sample(self.name + "_created", labels, child.created)
        return metric


class LoopGauge:
    """An unlabelled gauge held as a plain number (``inc``/``dec``/``set`` as in prometheus)."""

    __slots__ = ("documentation", "name", "value")

    def __init__(self, name: str, documentation: str) -> None:
        self.name = name
        self.documentation = documentation
        self.value = 0.0

    def inc(self, amount: float = 1.0) -> None:
        self.value += amount

    def dec(self, amount: float = 1.0) -> None:
        self.value -= amount

    def set(self, value: float) -> None:
        self.value = float(value)

    def collect(self) -> Metric:
        metric = Metric(self.name, self.documentation, "gauge")
        metric.add_sample(self.name, {}, self.value)
        return metric


class _LoopCollector(Collector):
    """Exports the loop metrics at scrape time, in the order they were defined."""

    def __init__(self, metrics: tuple[LoopCounter | LoopHistogram | LoopGauge, ...]) -> None:
        self._metrics = metrics

    def collect(self) -> Iterator[Metric]:
        for metric in self._metrics:
            yield metric.collect()


REQUESTS = LoopCounter(
    "dijk_requests",
    "Requests answered by the gateway, by route, status and reason code.",
    ("route", "status", "reason"),
)
GATEWAY_LATENCY = LoopHistogram(
    "dijk_request_duration_seconds",
    "Time from request headers received to response finished, by route.",
    ("route",),
    _LATENCY_BUCKETS,
)
UPSTREAM_LATENCY = LoopHistogram(
    "dijk_upstream_duration_seconds",
    "Time from sending the request upstream to the end of the upstream response.",
    ("route",),
    _LATENCY_BUCKETS,
)
STAGE_FAULTS = Counter(
    "dijk_stage_faults",
    "Exceptions raised inside stages (faults, not policy), by stage.",
    ("stage",),
    registry=REGISTRY,
)
IN_FLIGHT = LoopGauge("dijk_requests_in_flight", "Requests being handled right now.")
CONNECTIONS = LoopGauge("dijk_connections_open", "Client connections open.")
UPLOADS = LoopGauge(
    "dijk_uploads_in_progress",
    "Requests whose body is still arriving (counted apart from requests in flight).",
)
BODY_BUFFERED = LoopGauge(
    "dijk_request_body_buffered_bytes",
    "Request body bytes the gateway holds in memory (limits.max_buffered_body_bytes).",
)
PROTOCOL_ERRORS = LoopCounter(
    "dijk_protocol_errors",
    "Requests refused before routing (malformed HTTP, limits, timeouts), by reason.",
    ("reason",),
)
RELOADS = Counter(
    "dijk_config_reloads", "Configuration reloads, by result.", ("result",), registry=REGISTRY
)
CONFIG_GENERATION = Gauge(
    "dijk_config_generation",
    "Generation number of the configuration being served.",
    registry=REGISTRY,
)
# API discovery (dijk.discovery): rare updates (a new endpoint, a flush), so
# prometheus-client's own classes.
DISCOVERY_ENDPOINTS = Gauge(
    "dijk_discovery_endpoints",
    "Endpoints (method and path template) the discovery inventory of this gateway has seen.",
    registry=REGISTRY,
)
DISCOVERY_SHADOW = Gauge(
    "dijk_discovery_shadow_endpoints",
    "Endpoints seen on routes whose OpenAPI document does not declare them (shadow APIs).",
    registry=REGISTRY,
)
DISCOVERY_EVICTED = Counter(
    "dijk_discovery_evicted",
    "Endpoints evicted from the in-memory inventory to keep within its memory bounds.",
    registry=REGISTRY,
)
REGISTRY.register(
    _LoopCollector(
        (
            REQUESTS,
            GATEWAY_LATENCY,
            UPSTREAM_LATENCY,
            IN_FLIGHT,
            CONNECTIONS,
            UPLOADS,
            BODY_BUFFERED,
            PROTOCOL_ERRORS,
        )
    )
)

_GATEWAY_CHILDREN = GATEWAY_LATENCY.children
_UPSTREAM_CHILDREN = UPSTREAM_LATENCY.children
_REQUEST_COUNTS = REQUESTS.values


def observe_request(route: str, status: int, reason: str, seconds: float) -> None:
    """Count one answered request and its gateway latency (the per-request hot path)."""
    key = (route, str(status), reason)
    if key in _REQUEST_COUNTS:
        _REQUEST_COUNTS[key] += 1
    else:
        REQUESTS.inc_key(key)
    (_GATEWAY_CHILDREN.get((route,)) or GATEWAY_LATENCY.child((route,))).observe(seconds)


def observe_upstream(route: str, seconds: float) -> None:
    (_UPSTREAM_CHILDREN.get((route,)) or UPSTREAM_LATENCY.child((route,))).observe(seconds)


def stage_fault(stage: str) -> None:
    STAGE_FAULTS.labels(stage).inc()


def protocol_error(reason: str) -> None:
    PROTOCOL_ERRORS.inc_key((reason,))


def render() -> bytes:
    """The exposition text: this process's metrics, or every worker's added up."""
    if _shared_dir is None:
        return generate_latest(REGISTRY)
    write_snapshot()  # this worker's own numbers are fresh; the others' at most a second old
    return generate_latest(_SharedCollector(_shared_dir).registry())


# ---- several worker processes ---------------------------------------------------------------
# With ``workers: N`` every worker keeps its own loop metrics (nothing shared on the hot path)
# and writes a snapshot of its whole registry to a directory the supervisor made, about once
# a second and at every scrape. Whichever worker answers ``/metrics`` adds the snapshots up:
# counters, histograms and summaries of every worker that ever ran (a dead worker's file stays,
# renamed ``dead-<pid>.json`` by the supervisor, so totals never go down when one is restarted),
# gauges of the live ones only. prometheus-client's own multiprocess mode would put a lock and
# an mmap write on every update, which the per-request metrics above exist to avoid.

_shared_dir: Path | None = None
# Gauges where a sum means nothing: the generation is the oldest any worker serves (a worker
# whose reload failed shows), not the sum.
_GAUGE_MIN = frozenset({"dijk_config_generation"})


def share(directory: Path) -> None:
    """Write snapshots to ``directory`` and answer ``/metrics`` with every worker's sum."""
    global _shared_dir
    _shared_dir = directory


def snapshot_path(directory: Path, pid: int, *, dead: bool = False) -> Path:
    return directory / f"{'dead' if dead else 'worker'}-{pid}.json"


def write_snapshot() -> None:
    """Replace this process's snapshot (write, then rename: a reader never sees half)."""
    if _shared_dir is None:
        return
    families = [
        [family.name, family.type, family.documentation, [list(s[:3]) for s in family.samples]]
        for family in REGISTRY.collect()
    ]
    pid = os.getpid()
    temporary = _shared_dir / f".{pid}.tmp"
    temporary.write_bytes(orjson.dumps(families))
    temporary.replace(snapshot_path(_shared_dir, pid))


class _SharedCollector(Collector):
    def __init__(self, directory: Path) -> None:
        self._directory = directory

    def registry(self) -> CollectorRegistry:
        registry = CollectorRegistry(auto_describe=False)
        registry.register(self)
        return registry

    def collect(self) -> Iterator[Metric]:
        return iter(aggregate(self._snapshots()))

    def _snapshots(self) -> Iterator[tuple[bool, list[Any]]]:
        for path in sorted(self._directory.glob("*.json")):
            try:
                yield path.name.startswith("worker-"), orjson.loads(path.read_bytes())
            except (OSError, orjson.JSONDecodeError):
                continue  # removed or replaced meanwhile: the next scrape has it


def aggregate(snapshots: Iterable[tuple[bool, list[Any]]]) -> list[Metric]:
    """Add up ``(live, families)`` snapshots: one family per name, samples in first-seen order.

    Counters, histograms and summaries are summed over every snapshot; gauges over live
    ones (``_GAUGE_MIN`` takes the minimum); ``_created`` samples take the earliest time;
    any other type takes the largest value.
    """
    families: dict[str, Metric] = {}
    values: dict[str, dict[tuple[str, tuple[tuple[str, str], ...]], list[Any]]] = {}
    for live, snapshot in snapshots:
        for name, kind, documentation, samples in snapshot:
            if kind == "gauge" and not live:
                continue
            if name not in families:
                families[name] = Metric(name, documentation, kind)
                values[name] = {}
            merged = values[name]
            for sample_name, labels, value in samples:
                key = (sample_name, tuple(sorted(labels.items())))
                found = merged.get(key)
                if found is None:
                    merged[key] = [sample_name, labels, value]
                elif sample_name.endswith("_created") or name in _GAUGE_MIN:
                    found[2] = min(found[2], value)
                elif kind in ("counter", "histogram", "summary", "gauge"):
                    found[2] += value
                else:
                    found[2] = max(found[2], value)
    for name, metric in families.items():
        for sample_name, labels, value in values[name].values():
            metric.add_sample(sample_name, labels, value)
    return list(families.values())
