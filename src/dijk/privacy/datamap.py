"""The data map recorder: what personal data each endpoint processes, aggregated in memory.

The privacy stage hands one :class:`Observation` per request to :meth:`DataMapRecorder.record`
(a few dictionary updates, no I/O). A background task writes the aggregate to the privacy
tables (:mod:`dijk.privacy.db`) every ``flush_interval_s`` and once more on close
(shutdown, or the configuration being replaced). If the database is down, the rows stay in
memory and are written with the next successful flush; memory is bounded by
``max_pending`` rows, past which new rows are counted as dropped (and the reports say the
numbers are lower bounds), never by refusing requests.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final

import orjson
import structlog

from dijk.flushing import PeriodicWriter
from dijk.privacy.db import Batch, PrivacyDatabase

__all__ = ["ANY_CATEGORY", "DataMapRecorder", "Observation"]

log = structlog.get_logger("dijk.privacy")

ANY_CATEGORY: Final = "*"
_PRUNE_EVERY_US: Final = 3600 * 1_000_000


@dataclass(slots=True)
class Observation:
    """What one request carried, without any raw value (see the module docstring)."""

    time_us: int
    method: str
    endpoint: str
    route: str
    consumer: str = ""
    auth_method: str = ""
    scopes: tuple[str, ...] = ()
    client: str = ""
    client_net: str = ""
    reason: str = ""
    request: dict[tuple[str, str], int] = field(default_factory=dict)
    response: dict[tuple[str, str], int] = field(default_factory=dict)
    masked: frozenset[str] = frozenset()
    unneeded: frozenset[str] = frozenset()
    subjects: dict[str, set[str]] = field(default_factory=dict)
    exposed: bool = False


# datamap value: [route, records, occurrences, masked, unneeded, first_us, last_us]
# exposure value: [client_net, records, occurrences, masked]


class DataMapRecorder(PeriodicWriter[PrivacyDatabase]):
    """Aggregates observations and flushes them; shared by the privacy stages of a config."""

    def __init__(
        self,
        database: Callable[[], PrivacyDatabase],
        *,
        flush_interval_s: float = 10.0,
        bucket_s: int = 300,
        retention_days: int = 400,
        max_pending: int = 200_000,
        meta: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(database, flush_interval_s, name="privacy-datamap", logger=log)
        self._bucket_us = bucket_s * 1_000_000
        self._retention_us = retention_days * 86_400 * 1_000_000
        self._max_pending = max_pending
        self._meta = dict(meta or {})
        self._meta_written = False
        self._datamap: dict[tuple[str, ...], list[Any]] = {}
        self._consumers: dict[str, list[Any]] = {}
        self._exposure: dict[tuple[Any, ...], list[Any]] = {}
        self._subjects: set[tuple[Any, ...]] = set()
        self.dropped = 0
        self._last_prune_us = 0

    # -- the request path: memory only ---------------------------------------------------

    @property
    def pending(self) -> int:
        return len(self._datamap) + len(self._exposure) + len(self._subjects) + len(self._consumers)

    def record(self, observation: Observation) -> None:
        if self._closed:
            return
        self._ensure_task()
        now = observation.time_us
        self._record_fields(observation, "request", observation.request, now)
        self._record_fields(observation, "response", observation.response, now)
        if observation.consumer:
            entry = self._consumers.get(observation.consumer)
            scopes = orjson.dumps(sorted(observation.scopes)).decode()
            if entry is None:
                # Token callers bring their own names (jwt:<sub>): bounded like every row.
                if self.pending >= self._max_pending:
                    self.dropped += 1
                else:
                    self._consumers[observation.consumer] = [
                        observation.auth_method,
                        scopes,
                        now,
                        now,
                    ]
            else:
                entry[0], entry[1], entry[3] = observation.auth_method, scopes, now
        if observation.exposed and observation.response:
            self._record_exposure(observation)

    def _record_fields(
        self,
        observation: Observation,
        direction: str,
        fields: dict[tuple[str, str], int],
        now: int,
    ) -> None:
        if not fields:
            return
        response = direction == "response"
        for (path, category), occurrences in fields.items():
            key = (
                observation.method,
                observation.endpoint,
                direction,
                path,
                category,
                observation.consumer,
            )
            masked = occurrences if response and category in observation.masked else 0
            unneeded = occurrences if response and category in observation.unneeded else 0
            entry = self._datamap.get(key)
            if entry is None:
                if self.pending >= self._max_pending:
                    self.dropped += 1
                    continue
                self._datamap[key] = [observation.route, 1, occurrences, masked, unneeded, now, now]
            else:
                entry[0] = observation.route
                entry[1] += 1
                entry[2] += occurrences
                entry[3] += masked
                entry[4] += unneeded
                entry[6] = now

    def _record_exposure(self, observation: Observation) -> None:
        bucket = observation.time_us - observation.time_us % self._bucket_us
        base = (
            bucket,
            observation.method,
            observation.endpoint,
            observation.consumer,
            observation.client,
            observation.reason,
        )
        per_category: dict[str, int] = {}
        for (_, category), occurrences in observation.response.items():
            per_category[category] = per_category.get(category, 0) + occurrences
        total = sum(per_category.values())
        per_category[ANY_CATEGORY] = total
        for category, occurrences in per_category.items():
            key = (*base, category)
            if category == ANY_CATEGORY:
                masked = sum(
                    count for name, count in per_category.items() if name in observation.masked
                )
            else:
                masked = occurrences if category in observation.masked else 0
            entry = self._exposure.get(key)
            if entry is None:
                if self.pending >= self._max_pending:
                    self.dropped += 1
                    continue
                self._exposure[key] = [observation.client_net, 1, occurrences, masked]
            else:
                entry[1] += 1
                entry[2] += occurrences
                entry[3] += masked
        for category, subjects in observation.subjects.items():
            for subject in subjects:
                if self.pending >= self._max_pending:
                    self.dropped += 1
                    continue
                self._subjects.add((*base, category, subject))

    # -- flushing ------------------------------------------------------------------------

    def _take(self) -> Batch:
        now = time.time_ns() // 1000
        batch = Batch(
            datamap=[(*key, *value) for key, value in self._datamap.items()],
            consumers=[(name, *value) for name, value in self._consumers.items()],
            exposure=[(*key, *value) for key, value in self._exposure.items()],
            subjects=list(self._subjects),
        )
        if self.dropped:
            self._meta["dropped_rows"] = str(
                int(self._meta.get("dropped_rows", "0")) + self.dropped
            )
            self.dropped = 0
            self._meta_written = False
        if not self._meta_written and (batch.datamap or batch.exposure or self._meta):
            self._meta["updated_us"] = str(now)
            batch.meta = sorted(self._meta.items())
        if now - self._last_prune_us > _PRUNE_EVERY_US:
            batch.prune_before_us = now - self._retention_us
        self._datamap, self._consumers, self._exposure = {}, {}, {}
        self._subjects = set()
        return batch

    def _restore(self, batch: Batch) -> None:
        """Put a batch that could not be written back, merged with what came since."""
        for row in batch.datamap:
            key, value = tuple(row[:6]), list(row[6:])
            entry = self._datamap.get(key)
            if entry is None:
                self._datamap[key] = value
            else:
                entry[1] += value[1]
                entry[2] += value[2]
                entry[3] += value[3]
                entry[4] += value[4]
                entry[5] = min(entry[5], value[5])
        for row in batch.consumers:
            self._consumers.setdefault(row[0], list(row[1:]))
        for row in batch.exposure:
            key, value = tuple(row[:7]), list(row[7:])
            entry = self._exposure.get(key)
            if entry is None:
                self._exposure[key] = value
            else:
                entry[1] += value[1]
                entry[2] += value[2]
                entry[3] += value[3]
        self._subjects.update(batch.subjects)
        if batch.meta:
            self._meta_written = False

    async def _write(self) -> bool:
        batch = self._take()
        if batch.empty:
            return True
        try:
            database = await self._connected()
            await database.write(batch)
        except Exception as exc:  # the database is down or refused: keep the rows
            self._restore(batch)
            await self._failed(exc)
            return False
        self.flushes += 1
        if batch.meta:
            self._meta_written = True
        if batch.prune_before_us is not None:
            self._last_prune_us = time.time_ns() // 1000
        return True
