"""Traffic over time from the audit log, for the dashboard: one summary per time range.

Two grouped scans of the records in the range (the database does the counting; no record
is loaded): requests, refusals and upstream errors per time bucket with a latency
histogram, and counts per (route, consumer, decision, reason). Latency percentiles come
from the histogram, so they are upper bounds of a bucket (``<= 5 ms``), never made-up
precision. Admin actions (route ``admin:...``) are not traffic and are left out.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Final

# S608: the table name comes from parse_store_url ([a-z_][a-z0-9_]*), the rest is constants
# and placeholders; every value is a bound parameter.
# ruff: noqa: S608
from dijk.audit.record import ADMIN_ROUTE_PREFIX, datetime_to_us

__all__ = [
    "LATENCY_BOUNDS_US",
    "Bucket",
    "TrafficSummary",
    "percentile",
    "summarise",
    "summary_queries",
]

LATENCY_BOUNDS_US: Final = (
    *(250, 500, 1_000, 2_000, 5_000, 10_000, 20_000, 50_000, 100_000, 200_000, 500_000),
    *(1_000_000, 2_000_000, 5_000_000, 10_000_000, 30_000_000),
)
"""Upper bounds of the latency histogram's buckets; one more bucket holds the rest."""


@dataclass(slots=True)
class Bucket:
    start_us: int
    requests: int = 0
    refused: int = 0
    upstream_errors: int = 0
    latency: list[int] = field(default_factory=lambda: [0] * (len(LATENCY_BOUNDS_US) + 1))


@dataclass(slots=True)
class TrafficSummary:
    since_us: int
    until_us: int
    bucket_us: int
    buckets: list[Bucket]
    routes: dict[str, list[int]]  # route -> [requests, refused]
    consumers: dict[str, list[int]]
    reasons: dict[str, int]  # refusals by reason

    @property
    def requests(self) -> int:
        return sum(bucket.requests for bucket in self.buckets)

    @property
    def refused(self) -> int:
        return sum(bucket.refused for bucket in self.buckets)

    @property
    def upstream_errors(self) -> int:
        return sum(bucket.upstream_errors for bucket in self.buckets)

    def latency_percentile(self, fraction: float) -> int | None:
        total = [0] * (len(LATENCY_BOUNDS_US) + 1)
        for bucket in self.buckets:
            for index, count in enumerate(bucket.latency):
                total[index] += count
        return percentile(total, fraction)

    def top(self, table: dict[str, list[int]], limit: int = 10) -> list[tuple[str, int, int]]:
        ranked = sorted(table.items(), key=lambda item: (-item[1][0], item[0]))
        return [(name, counts[0], counts[1]) for name, counts in ranked[:limit]]


def percentile(histogram: Sequence[int], fraction: float) -> int | None:
    """The upper bound (µs) of the bucket holding the ``fraction`` quantile; None when
    empty; for the open last bucket, the last bound (read as "more than")."""
    count = sum(histogram)
    if count == 0:
        return None
    rank = fraction * count
    seen = 0
    for index, items in enumerate(histogram):
        seen += items
        if seen >= rank and items:
            return LATENCY_BOUNDS_US[min(index, len(LATENCY_BOUNDS_US) - 1)]
    return LATENCY_BOUNDS_US[-1]


def summary_queries(
    table: str,
    time_column: str,
    bucket_of: Callable[[str, str], str],
    placeholder: Callable[[int], str],
) -> tuple[str, str]:
    """The two SQL statements (timeline, breakdown); parameters: since, until, width.

    ``time_column`` is compared with since/until (the backend's time type, so its index
    serves the range); ``bucket_of(since, width)`` is the backend's expression for the
    bucket number of a record. Bounds and the admin prefix are constants of this module,
    not input, so they are inlined.
    """
    since, until, width = placeholder(1), placeholder(2), placeholder(3)
    cases = " ".join(
        f"WHEN gateway_latency_us < {bound} THEN {index}"
        for index, bound in enumerate(LATENCY_BOUNDS_US)
    )
    latency = f"CASE {cases} ELSE {len(LATENCY_BOUNDS_US)} END"
    prefix = ADMIN_ROUTE_PREFIX
    where = (
        f"{time_column} >= {since} AND {time_column} < {until}"
        f" AND (route IS NULL OR substr(route, 1, {len(prefix)}) <> '{prefix}')"
    )
    timeline = (
        f"SELECT {bucket_of(since, width)} AS bucket, {latency} AS latency,"
        " count(*), sum(CASE WHEN decision = 'deny' THEN 1 ELSE 0 END),"
        " sum(CASE WHEN substr(reason, 1, 9) = 'upstream.' THEN 1 ELSE 0 END)"
        f" FROM {table} WHERE {where} GROUP BY 1, 2"
    )
    breakdown = (
        "SELECT route, consumer, decision, reason, count(*)"
        f" FROM {table} WHERE {where} GROUP BY route, consumer, decision, reason"
    )
    return timeline, breakdown


def summarise(
    since: datetime,
    until: datetime,
    buckets: int,
    timeline: Sequence[Sequence[Any]],
    breakdown: Sequence[Sequence[Any]],
) -> TrafficSummary:
    """A :class:`TrafficSummary` from the rows of the two :func:`summary_queries`."""
    since_us, until_us = datetime_to_us(since), datetime_to_us(until)
    width = bucket_width(since, until, buckets)
    count = max(1, -(-(until_us - since_us) // width))
    series = [Bucket(since_us + index * width) for index in range(count)]
    for index, latency, requests, refused, upstream in timeline:
        if not 0 <= int(index) < count:
            continue
        bucket = series[int(index)]
        bucket.requests += int(requests)
        bucket.refused += int(refused or 0)
        bucket.upstream_errors += int(upstream or 0)
        bucket.latency[int(latency)] += int(requests)
    routes: dict[str, list[int]] = {}
    consumers: dict[str, list[int]] = {}
    reasons: dict[str, int] = {}
    for route, consumer, decision, reason, requests in breakdown:
        denied = int(requests) if decision == "deny" else 0
        for table, key in ((routes, route or "(no route)"), (consumers, consumer or "(anonymous)")):
            entry = table.setdefault(key, [0, 0])
            entry[0] += int(requests)
            entry[1] += denied
        if denied:
            name = reason or "(no reason)"
            reasons[name] = reasons.get(name, 0) + denied
    return TrafficSummary(since_us, until_us, width, series, routes, consumers, reasons)


def bucket_width(since: datetime, until: datetime, buckets: int) -> int:
    """Microseconds per bucket: the range in ``buckets`` parts, at least one second."""
    span = max(1, datetime_to_us(until) - datetime_to_us(since))
    return max(1_000_000, -(-span // max(1, buckets)))
