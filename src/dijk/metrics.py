"""Prometheus metrics of the gateway (all names start with ``dijk_``).

Label children are cached per label tuple so the hot path does one dict lookup instead of
prometheus-client's label validation on every request.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.metrics import MetricWrapperBase

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

REQUESTS = Counter(
    "dijk_requests",
    "Requests answered by the gateway, by route, status and reason code.",
    ("route", "status", "reason"),
    registry=REGISTRY,
)
GATEWAY_LATENCY = Histogram(
    "dijk_request_duration_seconds",
    "Time from request headers received to response finished, by route.",
    ("route",),
    buckets=_LATENCY_BUCKETS,
    registry=REGISTRY,
)
UPSTREAM_LATENCY = Histogram(
    "dijk_upstream_duration_seconds",
    "Time from sending the request upstream to the end of the upstream response.",
    ("route",),
    buckets=_LATENCY_BUCKETS,
    registry=REGISTRY,
)
STAGE_FAULTS = Counter(
    "dijk_stage_faults",
    "Exceptions raised inside stages (faults, not policy), by stage.",
    ("stage",),
    registry=REGISTRY,
)
IN_FLIGHT = Gauge("dijk_requests_in_flight", "Requests being handled right now.", registry=REGISTRY)
CONNECTIONS = Gauge("dijk_connections_open", "Client connections open.", registry=REGISTRY)
PROTOCOL_ERRORS = Counter(
    "dijk_protocol_errors",
    "Requests refused before routing (malformed HTTP, limits, timeouts), by reason.",
    ("reason",),
    registry=REGISTRY,
)
RELOADS = Counter(
    "dijk_config_reloads", "Configuration reloads, by result.", ("result",), registry=REGISTRY
)
CONFIG_GENERATION = Gauge(
    "dijk_config_generation",
    "Generation number of the configuration being served.",
    registry=REGISTRY,
)

_cache: dict[tuple[object, ...], MetricWrapperBase] = {}


def _child(metric: MetricWrapperBase, *labels: str) -> MetricWrapperBase:
    key = (id(metric), *labels)
    child = _cache.get(key)
    if child is None:
        child = metric.labels(*labels)
        _cache[key] = child
    return child


def observe_request(route: str, status: int, reason: str, seconds: float) -> None:
    _child(REQUESTS, route, str(status), reason).inc()  # type: ignore[attr-defined]
    _child(GATEWAY_LATENCY, route).observe(seconds)  # type: ignore[attr-defined]


def observe_upstream(route: str, seconds: float) -> None:
    _child(UPSTREAM_LATENCY, route).observe(seconds)  # type: ignore[attr-defined]


def stage_fault(stage: str) -> None:
    _child(STAGE_FAULTS, stage).inc()  # type: ignore[attr-defined]


def protocol_error(reason: str) -> None:
    _child(PROTOCOL_ERRORS, reason).inc()  # type: ignore[attr-defined]


def render() -> bytes:
    return generate_latest(REGISTRY)
