"""Abuse state behind ``storage.url``: windowed counters, distinct counts, incidents.

A request's observations are one batch of :class:`Op` values, run in one call: on Redis
one ``EVALSHA`` (counters with ``INCRBY``, distinct counts with ``PFADD``/``PFCOUNT`` over
the window's slices, so never a set per address), in process the same arithmetic on dicts
and :class:`~dijk.abuse.sketch.Sketch` values, bounded by ``max_keys``. Each batch also
carries the caller's incident epoch; when another instance opened or lifted an incident
since, the answer brings the incident table along, so the request phase never needs a
round trip of its own.

Windows are cut into ``slices`` fixed slices keyed by their index (``key:<index>``): a
count over a window reads the current slice and the ``slices - 1`` before it. Slice
indices come from the caller's wall clock (``now``), the same on every instance to the
accuracy of NTP.
"""

from __future__ import annotations

import asyncio
import math
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from enum import IntEnum
from typing import TYPE_CHECKING, Any, ClassVar, NamedTuple

from dijk.abuse.sketch import Sketch, merged
from dijk.storage import StorageUnavailable

if TYPE_CHECKING:
    from dijk.storage.redis import RedisStorage

__all__ = ["AbuseStore", "Kind", "MemoryAbuseStore", "Op", "RedisAbuseStore", "open_store"]


class Kind(IntEnum):
    COUNT = 1  # add value to the current slice; answer the window's sum
    DISTINCT = 2  # add member to the current slice; answer the window's distinct count
    COUNT_READ = 3
    DISTINCT_READ = 4
    REMEMBER = 5  # mark key for ttl
    KNOWN = 6  # 1 if marked
    SEQUENCE = 7  # integer id; answer the run of +/-1 steps ending here
    STAMP = 8  # member -> now; answer [member, ms, ...] seen within the window


# Plain ints for the per-request code (an IntEnum member lookup costs a descriptor call).
_COUNT, _DISTINCT, _COUNT_READ, _DISTINCT_READ = 1, 2, 3, 4
_REMEMBER, _KNOWN, _SEQUENCE, _STAMP = 5, 6, 7, 8


class Op(NamedTuple):
    kind: Kind
    key: str
    value: str = "1"
    window_s: float = 0.0


class Batch(NamedTuple):
    results: list[object]
    epoch: int
    incidents: dict[str, bytes] | None  # the whole table when the epoch moved


def slice_keys(key: str, now: float, window_s: float, slices: int) -> list[str]:
    length = window_s / slices
    current = int(now // length)
    return [f"{key}:{current - offset}" for offset in range(slices)]


def _ttl_ms(window_s: float, slices: int) -> int:
    return max(1, math.ceil(window_s * (1 + 1 / slices) * 1000))


class AbuseStore(ABC):
    url: str

    def __init__(self, prefix: str, slices: int) -> None:
        self.prefix = prefix
        self.slices = slices
        self._users = 0

    @abstractmethod
    async def run(self, ops: Sequence[Op], epoch: int, now: float) -> Batch: ...

    @abstractmethod
    async def put_incident(self, incident_id: str, payload: bytes, until: float) -> int:
        """Store an incident that lasts until ``until`` (wall clock); the new epoch."""

    @abstractmethod
    async def lift(self, incident_id: str) -> bool:
        """Remove an incident; whether it existed."""

    @abstractmethod
    async def incidents(self) -> tuple[int, dict[str, bytes]]: ...

    async def close(self) -> None:
        return None

    def acquire(self) -> None:
        self._users += 1

    async def release(self) -> None:
        self._users -= 1
        if self._users <= 0:
            await self.close()


class _Entry:
    __slots__ = ("expires", "value")

    def __init__(self, value: object, expires: float) -> None:
        self.value = value
        self.expires = expires


class MemoryAbuseStore(AbuseStore):
    """One process: exact to the sketch's accuracy, shared by every reload of a config."""

    _shared: ClassVar[dict[tuple[str, str], MemoryAbuseStore]] = {}

    def __init__(
        self,
        url: str = "memory://",
        prefix: str = "",
        slices: int = 4,
        max_keys: int = 200_000,
    ) -> None:
        super().__init__(prefix, slices)
        self.url = url
        self._max_keys = max_keys
        self._values: dict[str, _Entry] = {}
        self._incidents: dict[str, tuple[bytes, float]] = {}
        self._epoch = 0
        self._operations = 0

    @classmethod
    def shared(cls, url: str, prefix: str, slices: int, max_keys: int) -> MemoryAbuseStore:
        store = cls._shared.get((url, prefix))
        if store is None or store.slices != slices:
            store = cls._shared[(url, prefix)] = cls(url, prefix, slices, max_keys)
        store._max_keys = max_keys
        return store

    async def release(self) -> None:
        self._users -= 1  # kept for the process: a reload keeps counts and incidents

    # -- values ----------------------------------------------------------------------------
    def _get(self, key: str, now: float) -> object | None:
        entry = self._values.get(key)
        if entry is None:
            return None
        if entry.expires <= now:
            del self._values[key]
            return None
        return entry.value

    def _put(self, key: str, value: object, expires: float) -> None:
        entry = self._values.get(key)
        if entry is not None:
            entry.value = value
            entry.expires = expires
            return
        if len(self._values) >= self._max_keys:
            self._evict()
        self._values[key] = _Entry(value, expires)

    def _evict(self) -> None:
        now = time.time()
        for key in [key for key, entry in self._values.items() if entry.expires <= now]:
            del self._values[key]
        # Still full: drop the oldest tenth (insertion order), so memory stays bounded.
        excess = len(self._values) - self._max_keys * 9 // 10
        if excess > 0:
            for key in list(self._values)[:excess]:
                del self._values[key]

    async def run(self, ops: Sequence[Op], epoch: int, now: float) -> Batch:
        results: list[object] = []
        for op in ops:
            results.append(self._one(op, now))
        incidents = None
        if epoch != self._epoch:
            incidents = self._live_incidents(now)
        return Batch(results, self._epoch, incidents)

    def _one(self, op: Op, now: float) -> object:
        kind = int(op.kind)
        slices = self.slices
        if kind <= _DISTINCT_READ:
            keys = slice_keys(op.key, now, op.window_s, slices)
            expires = now + _ttl_ms(op.window_s, slices) / 1000
            if kind == _COUNT:
                current = self._get(keys[0], now)
                self._put(keys[0], int(current or 0) + int(op.value), expires)  # type: ignore[call-overload]
            elif kind == _DISTINCT:
                sketch = self._get(keys[0], now)
                if not isinstance(sketch, Sketch):
                    sketch = Sketch()
                sketch.add(op.value)
                self._put(keys[0], sketch, expires)
            if kind in (_COUNT, _COUNT_READ):
                return sum(int(self._get(key, now) or 0) for key in keys)  # type: ignore[call-overload]
            current = self._get(keys[0], now)
            older = self._older(op.key, keys, now, expires)
            if isinstance(current, Sketch):
                return merged(older, current).count() if older is not None else current.count()
            return older.count() if older is not None else 0
        if kind == _REMEMBER:
            self._put(op.key, 1, now + op.window_s)
            return 1
        if kind == _KNOWN:
            return 1 if self._get(op.key, now) is not None else 0
        if kind == _SEQUENCE:
            state = self._get(op.key, now)
            run = _next_run(state, int(op.value))  # type: ignore[arg-type]
            self._put(op.key, (int(op.value), run), now + op.window_s)
            return run
        if kind == _STAMP:
            stamps = self._get(op.key, now)
            if not isinstance(stamps, dict):
                stamps = {}
            now_ms = int(now * 1000)
            since = now_ms - int(op.window_s * 1000)
            stamps = {
                member: ms for member, ms in stamps.items() if ms >= since and member != op.value
            }
            stamps[op.value] = now_ms
            self._put(op.key, stamps, now + op.window_s)
            flat: list[object] = []
            for member, ms in stamps.items():
                flat.extend((member, ms))
            return flat
        raise ValueError(f"unknown abuse operation {kind!r}")

    def _older(self, key: str, keys: list[str], now: float, expires: float) -> Sketch | None:
        """The union of a window's past slices, cached: they no longer change, so only the
        current slice is merged per request."""
        cache_key = f"{key}:past"
        cached = self._get(cache_key, now)
        if isinstance(cached, tuple) and cached[0] == keys[0]:
            return cached[1]  # type: ignore[no-any-return]
        result: Sketch | None = None
        for name in keys[1:]:
            value = self._get(name, now)
            if isinstance(value, Sketch):
                result = value if result is None else merged(result, value)
        self._put(cache_key, (keys[0], result), expires)
        return result

    # -- incidents ---------------------------------------------------------------------------
    def _live_incidents(self, now: float) -> dict[str, bytes]:
        for key in [key for key, (_, until) in self._incidents.items() if until <= now]:
            del self._incidents[key]
        return {key: payload for key, (payload, _) in self._incidents.items()}

    async def put_incident(self, incident_id: str, payload: bytes, until: float) -> int:
        self._incidents[incident_id] = (payload, until)
        self._epoch += 1
        return self._epoch

    async def lift(self, incident_id: str) -> bool:
        found = self._incidents.pop(incident_id, None) is not None
        self._epoch += 1
        return found

    async def incidents(self) -> tuple[int, dict[str, bytes]]:
        return self._epoch, self._live_incidents(time.time())


def _next_run(state: tuple[int, int] | None, value: int) -> int:
    if state is None:
        return 1
    last, run = state
    if value == last:
        return run
    return run + 1 if abs(value - last) == 1 else 1


# One script per batch. KEYS: the ops' keys in order; ARGV: now_ms, epoch, op count, then
# per op (kind, number of keys, value, ttl_ms). The epoch key and the incident hash are the
# first two KEYS.
_BATCH = """
local now = tonumber(ARGV[1])
local known_epoch = ARGV[2]
local count = tonumber(ARGV[3])
local results = {}
local k = 3
local a = 4
for i = 1, count do
  local kind = tonumber(ARGV[a])
  local nkeys = tonumber(ARGV[a + 1])
  local value = ARGV[a + 2]
  local ttl = tonumber(ARGV[a + 3])
  a = a + 4
  local first = KEYS[k]
  if kind == 1 or kind == 3 then
    if kind == 1 then
      redis.call('INCRBY', first, value)
      redis.call('PEXPIRE', first, ttl)
    end
    local total = 0
    for j = k, k + nkeys - 1 do
      total = total + (tonumber(redis.call('GET', KEYS[j])) or 0)
    end
    results[i] = total
  elseif kind == 2 or kind == 4 then
    if kind == 2 then
      redis.call('PFADD', first, value)
      redis.call('PEXPIRE', first, ttl)
    end
    local names = {}
    for j = k, k + nkeys - 1 do
      names[#names + 1] = KEYS[j]
    end
    results[i] = redis.call('PFCOUNT', unpack(names))
  elseif kind == 5 then
    redis.call('SET', first, '1', 'PX', ttl)
    results[i] = 1
  elseif kind == 6 then
    results[i] = redis.call('EXISTS', first)
  elseif kind == 7 then
    local id = tonumber(value)
    local state = redis.call('HMGET', first, 'l', 'r')
    local last = tonumber(state[1])
    local run = tonumber(state[2]) or 0
    if last == nil then
      run = 1
    elseif last ~= id then
      if math.abs(id - last) == 1 then run = run + 1 else run = 1 end
    end
    redis.call('HSET', first, 'l', value, 'r', run)
    redis.call('PEXPIRE', first, ttl)
    results[i] = run
  elseif kind == 8 then
    local since = now - ttl
    local all = redis.call('HGETALL', first)
    local flat = {}
    for j = 1, #all, 2 do
      local ms = tonumber(all[j + 1])
      if ms < since then
        redis.call('HDEL', first, all[j])
      elseif all[j] ~= value then
        flat[#flat + 1] = all[j]
        flat[#flat + 1] = ms
      end
    end
    redis.call('HSET', first, value, now)
    redis.call('PEXPIRE', first, ttl)
    flat[#flat + 1] = value
    flat[#flat + 1] = now
    results[i] = flat
  end
  k = k + nkeys
end
local epoch = redis.call('GET', KEYS[1]) or '0'
if epoch == known_epoch then
  return {epoch, results}
end
return {epoch, results, redis.call('HGETALL', KEYS[2])}
"""


class RedisAbuseStore(AbuseStore):
    """Shared by every instance that points at the same Redis and key prefix."""

    def __init__(self, storage: RedisStorage, prefix: str, slices: int) -> None:
        super().__init__(prefix, slices)
        self.url = storage.url
        self._storage = storage
        self._timeout = storage.timeout_s
        self._client = storage.client
        self._batch = storage.client.register_script(_BATCH)
        self._epoch_key = prefix + "epoch"
        self._table_key = prefix + "incidents"

    async def run(self, ops: Sequence[Op], epoch: int, now: float) -> Batch:
        keys = [self._epoch_key, self._table_key]
        arguments: list[object] = [int(now * 1000), str(epoch), len(ops)]
        slices = self.slices
        for op in ops:
            kind = op.kind
            if kind in (Kind.COUNT, Kind.COUNT_READ, Kind.DISTINCT, Kind.DISTINCT_READ):
                names = slice_keys(op.key, now, op.window_s, slices)
                ttl = _ttl_ms(op.window_s, slices)
            else:
                names = [op.key]
                ttl = max(1, math.ceil(op.window_s * 1000))
            keys.extend(names)
            arguments.extend((int(kind), len(names), op.value, ttl))
        reply = await self._call(self._batch, keys, arguments)
        epoch_now = int(reply[0])
        results = [_plain(value) for value in reply[1]]
        table = None
        if len(reply) > 2:
            flat = reply[2]
            table = {_text(flat[i]): _bytes(flat[i + 1]) for i in range(0, len(flat), 2)}
        return Batch(results, epoch_now, table)

    async def _call(self, script: object, keys: list[str], arguments: list[object]) -> list[Any]:
        from redis.exceptions import RedisError

        try:
            async with asyncio.timeout(self._timeout * 2):
                reply = await script(keys=keys, args=arguments)  # type: ignore[operator]
        except (RedisError, OSError, TimeoutError) as exc:
            raise StorageUnavailable(f"redis: {type(exc).__name__}") from exc
        return list(reply)

    async def _command(self, *args: object) -> Any:
        from redis.exceptions import RedisError

        try:
            async with asyncio.timeout(self._timeout * 2):
                return await self._client.execute_command(*args)  # type: ignore[no-untyped-call]
        except (RedisError, OSError, TimeoutError) as exc:
            raise StorageUnavailable(f"redis: {type(exc).__name__}") from exc

    async def put_incident(self, incident_id: str, payload: bytes, until: float) -> int:
        await self._command("HSET", self._table_key, incident_id, payload)
        return int(await self._command("INCR", self._epoch_key))

    async def lift(self, incident_id: str) -> bool:
        found = bool(await self._command("HDEL", self._table_key, incident_id))
        await self._command("INCR", self._epoch_key)
        return found

    async def incidents(self) -> tuple[int, dict[str, bytes]]:
        epoch = await self._command("GET", self._epoch_key)
        flat = await self._command("HGETALL", self._table_key)
        if isinstance(flat, dict):
            table = {_text(key): _bytes(value) for key, value in flat.items()}
        else:
            items = list(flat)
            table = {_text(items[i]): _bytes(items[i + 1]) for i in range(0, len(items), 2)}
        return int(epoch or 0), table

    async def drop_expired(self, expired: Sequence[str]) -> None:
        if expired:
            await self._command("HDEL", self._table_key, *expired)

    async def close(self) -> None:
        await self._storage.close()


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _bytes(value: object) -> bytes:
    return value if isinstance(value, bytes) else str(value).encode()


def _plain(value: object) -> object:
    if isinstance(value, list):
        return [_text(item) if isinstance(item, bytes) else item for item in value]
    return int(value) if isinstance(value, (int, bytes, str)) else value


def open_store(
    url: str,
    timeout_s: float,
    prefix: str,
    slices: int,
    max_keys: int,
    clock: Callable[[], float] = time.time,
) -> AbuseStore:
    """The process-wide store for ``memory://``, or a Redis store with its own pool."""
    from dijk.storage import storage_scheme

    if storage_scheme(url) == "memory":
        return MemoryAbuseStore.shared(url, prefix, slices, max_keys)
    from dijk.storage.redis import RedisStorage

    return RedisAbuseStore(
        RedisStorage(url, timeout_s=timeout_s, max_connections=32), prefix, slices
    )
