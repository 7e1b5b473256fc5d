"""Traffic over time from the audit log, for the dashboard: one summary per time range.

Two grouped scans of the records in the range (the database does the counting; no record
is loaded): requests, refusals and upstream errors per time bucket with a latency
histogram, and counts per (route, consumer, decision, reason). Latency percentiles come
from the histogram, so they are upper bounds of a bucket (``<= 5 ms``), never made-up
precision. Admin actions (route ``admin:...``) are not traffic and are left out.
"""

from __future__ import annotations

import asyncio
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
    "SummaryCache",
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
    """The two SQL statements (timeline, breakdown), both per time bucket; parameters:
    since, until, width.

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
        f"SELECT {bucket_of(since, width)} AS bucket, route, consumer, decision, reason, count(*)"
        f" FROM {table} WHERE {where} GROUP BY 1, route, consumer, decision, reason"
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
    series = [_Counts() for _ in range(count)]
    total = _Counts()
    for index, latency, requests, refused, upstream in timeline:
        if 0 <= int(index) < count:
            series[int(index)].add_timeline(
                int(latency), int(requests), int(refused or 0), int(upstream or 0)
            )
    for _, route, consumer, decision, reason, requests in breakdown:
        total.add_breakdown(route, consumer, decision, reason, int(requests))
    return _summary(since_us, until_us, width, series, total)


def _summary(
    since_us: int, until_us: int, width: int, series: list[_Counts], total: _Counts
) -> TrafficSummary:
    """The summary of ``series`` (one entry per bucket) with the tables of ``total``."""
    buckets = []
    for index, counts in enumerate(series):
        bucket = Bucket(since_us + index * width)
        bucket.requests = counts.requests
        bucket.refused = counts.refused
        bucket.upstream_errors = counts.upstream_errors
        bucket.latency = counts.latency
        buckets.append(bucket)
    return TrafficSummary(
        since_us, until_us, width, buckets, total.routes, total.consumers, total.reasons
    )


def bucket_width(since: datetime, until: datetime, buckets: int) -> int:
    """Microseconds per bucket: the range in ``buckets`` parts, at least one second."""
    span = max(1, datetime_to_us(until) - datetime_to_us(since))
    return max(1_000_000, -(-span // max(1, buckets)))


MINUTE_US: Final = 60_000_000
HOUR_US: Final = 60 * MINUTE_US


@dataclass(slots=True)
class _Counts:
    """Everything a summary needs from some span of records, added up."""

    requests: int = 0
    refused: int = 0
    upstream_errors: int = 0
    latency: list[int] = field(default_factory=lambda: [0] * (len(LATENCY_BOUNDS_US) + 1))
    routes: dict[str, list[int]] = field(default_factory=dict)
    consumers: dict[str, list[int]] = field(default_factory=dict)
    reasons: dict[str, int] = field(default_factory=dict)

    def add_timeline(self, latency: int, requests: int, refused: int, upstream: int) -> None:
        self.requests += requests
        self.refused += refused
        self.upstream_errors += upstream
        self.latency[latency] += requests

    def add_breakdown(
        self, route: Any, consumer: Any, decision: Any, reason: Any, requests: int
    ) -> None:
        denied = requests if decision == "deny" else 0
        for table, key in (
            (self.routes, route or "(no route)"),
            (self.consumers, consumer or "(anonymous)"),
        ):
            entry = table.setdefault(key, [0, 0])
            entry[0] += requests
            entry[1] += denied
        if denied:
            name = reason or "(no reason)"
            self.reasons[name] = self.reasons.get(name, 0) + denied

    def add(self, other: _Counts) -> None:
        self.requests += other.requests
        self.refused += other.refused
        self.upstream_errors += other.upstream_errors
        for index, count in enumerate(other.latency):
            self.latency[index] += count
        for mine, theirs in ((self.routes, other.routes), (self.consumers, other.consumers)):
            for key, (requests, refused) in theirs.items():
                entry = mine.setdefault(key, [0, 0])
                entry[0] += requests
                entry[1] += refused
        for key, count in other.reasons.items():
            self.reasons[key] = self.reasons.get(key, 0) + count


class SummaryCache:
    """Per-minute aggregates of one audit store, so that a week of records is summed, not
    scanned, on every look at the overview.

    Minutes older than ``lag_s`` are read from the database once and kept (for
    ``keep_s``), whole hours of them added up once more; only the newer minutes are read
    again on each call. A record committed more than ``lag_s`` after its time (replayed
    from the spool after an outage) is missed until the cache is rebuilt, every
    ``rebuild_s``; the first call after a (re)build reads the whole kept span once.
    """

    def __init__(
        self, *, lag_s: float = 120, keep_s: float = 7 * 86_400 + 3600, rebuild_s: float = 900
    ) -> None:
        self._lag_us = int(lag_s * 1_000_000)
        self._keep_us = int(keep_s * 1_000_000)
        self._rebuild_us = int(rebuild_s * 1_000_000)
        self._minutes: dict[int, _Counts] = {}
        self._hours: dict[int, _Counts] = {}
        self._watermark_us: int | None = None  # minutes before this are cached
        self._built_us = 0
        self._lock = asyncio.Lock()

    async def summary(
        self, store: Any, since: datetime, until: datetime, buckets: int
    ) -> TrafficSummary:
        """Like ``store.summary(since, until, buckets)``, with ``since`` taken to the
        minute and buckets of whole minutes."""
        until_us = datetime_to_us(until)
        since_us = datetime_to_us(since) // MINUTE_US * MINUTE_US
        async with self._lock:  # one reader fills the cache; the others wait for it
            await self._advance(store, until_us)
        watermark = min(self._watermark_us or since_us, until_us)
        per_bucket = -(-(until_us - since_us) // max(1, buckets))
        width = max(MINUTE_US, -(-per_bucket // MINUTE_US) * MINUTE_US)
        count = max(1, -(-(until_us - since_us) // width))
        series = [_Counts() for _ in range(count)]
        moment = since_us
        while moment < watermark:
            index = (moment - since_us) // width
            hour_end = moment + HOUR_US
            whole_hour = (
                moment % HOUR_US == 0
                and hour_end <= watermark
                and (hour_end - MINUTE_US - since_us) // width == index
            )
            if whole_hour:
                series[index].add(self._hour(moment))
                moment = hour_end
                continue
            minute = self._minutes.get(moment)
            if minute is not None:
                series[index].add(minute)
            moment += MINUTE_US
        if watermark < until_us:
            rows, more = await store.summary_rows(
                _from_us(watermark), _from_us(until_us), MINUTE_US
            )
            first = (watermark - since_us) // MINUTE_US
            for minute_index, latency, requests, refused, upstream in rows:
                index = min(count - 1, (first + int(minute_index)) * MINUTE_US // width)
                series[index].add_timeline(
                    int(latency), int(requests), int(refused or 0), int(upstream or 0)
                )
            for _, route, consumer, decision, reason, requests in more:
                series[-1].add_breakdown(route, consumer, decision, reason, int(requests))
        total = _Counts()
        for counts in series:
            total.add(counts)
        return _summary(since_us, until_us, width, series, total)

    def _hour(self, start_us: int) -> _Counts:
        hour = self._hours.get(start_us)
        if hour is None:
            hour = _Counts()
            for moment in range(start_us, start_us + HOUR_US, MINUTE_US):
                minute = self._minutes.get(moment)
                if minute is not None:
                    hour.add(minute)
            self._hours[start_us] = hour
        return hour

    async def _advance(self, store: Any, until_us: int) -> None:
        target = (until_us - self._lag_us) // MINUTE_US * MINUTE_US
        stale = until_us - self._built_us > self._rebuild_us
        if self._watermark_us is None or stale:
            self._minutes.clear()
            self._hours.clear()
            self._watermark_us = (until_us - self._keep_us) // HOUR_US * HOUR_US
            self._built_us = until_us
        if target <= self._watermark_us:
            return
        start = self._watermark_us
        rows, more = await store.summary_rows(_from_us(start), _from_us(target), MINUTE_US)
        for index, latency, requests, refused, upstream in rows:
            minute = self._minutes.setdefault(start + int(index) * MINUTE_US, _Counts())
            minute.add_timeline(int(latency), int(requests), int(refused or 0), int(upstream or 0))
        for index, route, consumer, decision, reason, requests in more:
            minute = self._minutes.setdefault(start + int(index) * MINUTE_US, _Counts())
            minute.add_breakdown(route, consumer, decision, reason, int(requests))
        self._watermark_us = target
        floor = (until_us - self._keep_us) // HOUR_US * HOUR_US
        for minute_us in [m for m in self._minutes if m < floor]:
            del self._minutes[minute_us]
        for hour_us in [h for h in self._hours if h < floor]:
            del self._hours[hour_us]


def _from_us(value: int) -> datetime:
    from dijk.audit.record import datetime_from_us

    return datetime_from_us(value)
