"""Limiter backends behind the storage URL: in process (``memory://``) or Redis (``redis://``).

Both take a whole request's buckets at once and decide them atomically: either every
bucket admits the request and each is counted, or none is counted (a refused request does
not use up another rule's allowance). On Redis that is one ``EVALSHA`` round trip per check
on a bounded connection pool; a backend that cannot answer within the storage timeout
raises :class:`~dijk.storage.StorageUnavailable`.
"""

from __future__ import annotations

import asyncio
import heapq
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, ClassVar, NamedTuple

from dijk.ratelimit import algorithms
from dijk.ratelimit.algorithms import Algorithm, Outcome
from dijk.ratelimit.scripts import HIT, REFUND
from dijk.storage import Storage, StorageUnavailable

if TYPE_CHECKING:
    from dijk.storage.redis import RedisStorage


class Bucket(NamedTuple):
    """One counter to check: its storage key and the rule's parameters."""

    key: str
    algorithm: Algorithm
    limit: int
    window_ms: float = 0.0  # sliding window: window length; gcra: emission interval
    burst: int = 0  # gcra only


class HitResult(NamedTuple):
    allowed: bool
    outcomes: tuple[Outcome, ...]
    now_ms: float


class Limiter(ABC):
    """Atomic check-and-count over several buckets."""

    url: str
    storage: Storage | None = None  # the storage handle it owns, if any

    def __init__(self) -> None:
        self._users = 0

    @abstractmethod
    async def hit(self, buckets: Sequence[Bucket], cost: int = 1) -> HitResult: ...

    @abstractmethod
    async def refund(self, bucket: Bucket, token: int, cost: int = 1) -> None:
        """Give back ``cost`` to a sliding-window bucket counted in window ``token``."""

    async def close(self) -> None:
        return None

    async def ping(self) -> None:
        """Raise :class:`StorageUnavailable` if the backend cannot answer now (readiness)."""
        return None

    # Stages of one configuration share a limiter; the last one to close releases it.
    def acquire(self) -> None:
        self._users += 1

    async def release(self) -> None:
        self._users -= 1
        if self._users <= 0:
            await self.close()


class MemoryLimiter(Limiter):
    """State in this process: exact for one gateway instance, nothing shared.

    Decisions run without an ``await`` between read and write, so they are atomic on the
    event loop. Expired buckets are swept as time passes; ``max_keys`` bounds memory (a
    flood of new keys past it is answered as a storage error, i.e. per on_storage_error).
    """

    _shared: ClassVar[dict[str, MemoryLimiter]] = {}

    def __init__(
        self,
        url: str = "memory://",
        clock: Callable[[], float] = time.time,
        max_keys: int = 1_000_000,
    ) -> None:
        super().__init__()
        self.url = url
        self._clock = clock
        self._max_keys = max_keys
        self._state: dict[str, tuple[object, float]] = {}
        self._expiries: list[tuple[float, str]] = []
        self._operations = 0

    @classmethod
    def shared(cls, url: str) -> MemoryLimiter:
        """The process-wide limiter for ``url``: counters survive a configuration reload."""
        limiter = cls._shared.get(url)
        if limiter is None:
            limiter = cls._shared[url] = cls(url)
        return limiter

    async def release(self) -> None:
        self._users -= 1  # shared across reloads: never cleared by a configuration closing

    def now_ms(self) -> float:
        return self._clock() * 1000.0

    def _get(self, key: str, now: float) -> object | None:
        entry = self._state.get(key)
        if entry is None:
            return None
        if entry[1] <= now:
            del self._state[key]
            return None
        return entry[0]

    def _put(self, key: str, value: object, expires: float) -> None:
        if key in self._state:
            self._state[key] = (value, expires)
            return
        if len(self._state) >= self._max_keys:
            self._sweep(self.now_ms())
            if len(self._state) >= self._max_keys:
                raise StorageUnavailable("memory: rate-limit key table is full")
        self._state[key] = (value, expires)
        # One heap entry per key (not per hit): a hot key must not grow the heap.
        heapq.heappush(self._expiries, (expires, key))

    def _sweep(self, now: float) -> None:
        while self._expiries and self._expiries[0][0] <= now:
            _, key = heapq.heappop(self._expiries)
            entry = self._state.get(key)
            if entry is None:
                continue
            if entry[1] <= now:
                del self._state[key]
            else:  # extended since it was scheduled: look again when it really expires
                heapq.heappush(self._expiries, (entry[1], key))

    async def hit(self, buckets: Sequence[Bucket], cost: int = 1) -> HitResult:
        now = self._clock() * 1000.0
        self._operations += 1
        if self._operations & 1023 == 0:
            self._sweep(now)
        if len(buckets) == 1:  # the common case, without the lists
            outcome, write = self._decide(buckets[0], now, cost)
            if write is not None:
                self._put(*write)
            return HitResult(outcome.allowed, (outcome,), now)
        outcomes: list[Outcome] = []
        writes: list[tuple[str, object, float]] = []
        for bucket in buckets:
            outcome, write = self._decide(bucket, now, cost)
            outcomes.append(outcome)
            if write is not None:
                writes.append(write)
        allowed = all(outcome.allowed for outcome in outcomes)
        if allowed:
            for key, value, expires in writes:
                self._put(key, value, expires)
        return HitResult(allowed, tuple(outcomes), now)

    def _decide(
        self, bucket: Bucket, now: float, cost: int
    ) -> tuple[Outcome, tuple[str, object, float] | None]:
        state = self._get(bucket.key, now)
        algorithm = bucket.algorithm
        if algorithm is Algorithm.SLIDING_WINDOW:
            outcome, window = algorithms.sliding_window(
                now,
                bucket.window_ms,
                bucket.limit,
                cost,
                state,  # type: ignore[arg-type]
            )
            expires = now + bucket.window_ms * 2
            return outcome, (bucket.key, window, expires) if outcome.allowed else None
        if algorithm is Algorithm.GCRA:
            outcome, tat = algorithms.gcra(
                now,
                bucket.window_ms,
                bucket.burst,
                cost,
                state,  # type: ignore[arg-type]
            )
            return outcome, (bucket.key, tat, tat) if outcome.allowed else None
        outcome, counted, ends = algorithms.quota(
            now,
            algorithm,
            bucket.limit,
            cost,
            state,  # type: ignore[arg-type]
        )
        return outcome, (bucket.key, counted, ends + 60_000) if outcome.allowed else None

    async def refund(self, bucket: Bucket, token: int, cost: int = 1) -> None:
        if bucket.algorithm is not Algorithm.SLIDING_WINDOW:
            return
        now = self.now_ms()
        entry = self._state.get(bucket.key)
        if entry is None or entry[1] <= now:
            return
        state = algorithms.sliding_window_refund(entry[0], token, cost)  # type: ignore[arg-type]
        self._state[bucket.key] = (state, entry[1])

    async def close(self) -> None:
        self._state.clear()
        self._expiries.clear()


class RedisLimiter(Limiter):
    """Counters in Redis, shared by every gateway instance that points at it."""

    def __init__(self, storage: RedisStorage, owns_storage: bool = True) -> None:
        super().__init__()
        self.url = storage.url
        self.storage = self._storage = storage
        self._owns = owns_storage
        self._timeout = storage.timeout_s
        self._hit = storage.client.register_script(HIT)
        self._refund = storage.client.register_script(REFUND)

    async def hit(self, buckets: Sequence[Bucket], cost: int = 1) -> HitResult:
        arguments: list[float | int] = [cost]
        for bucket in buckets:
            arguments.extend(
                (int(bucket.algorithm), bucket.limit, bucket.window_ms or 0, bucket.burst or 0)
            )
        reply = await self._call(self._hit, [bucket.key for bucket in buckets], arguments)
        values = [int(value) for value in reply.split()]
        outcomes = tuple(
            Outcome(
                bool(values[index]),
                values[index + 1],
                values[index + 2],
                values[index + 3],
                values[index + 4],
            )
            for index in range(2, len(values), 5)
        )
        return HitResult(bool(values[0]), outcomes, float(values[1]))

    async def refund(self, bucket: Bucket, token: int, cost: int = 1) -> None:
        if bucket.algorithm is Algorithm.SLIDING_WINDOW:
            await self._call(self._refund, [bucket.key], [token, cost])

    async def _call(
        self, script: object, keys: list[str], arguments: Sequence[float | int]
    ) -> bytes:
        from redis.exceptions import RedisError

        try:
            # The pool and socket timeouts already bound each step; this bounds the sum
            # (pool wait + connect + command), so no request waits longer than the timeout.
            async with asyncio.timeout(self._timeout * 2):
                reply = await script(keys=keys, args=list(arguments))  # type: ignore[operator]
        except (RedisError, OSError, TimeoutError) as exc:
            raise StorageUnavailable(f"redis: {type(exc).__name__}") from exc
        return reply if isinstance(reply, bytes) else str(reply).encode()

    async def ping(self) -> None:
        try:
            async with asyncio.timeout(self._timeout * 2):
                await self._storage.ping()
        except TimeoutError as exc:
            raise StorageUnavailable("redis: TimeoutError") from exc

    async def close(self) -> None:
        if self._owns:
            await self._storage.close()


def open_limiter(url: str, timeout_s: float, max_connections: int = 64) -> Limiter:
    """A limiter for ``url``: the process-wide one for ``memory://``, or a new Redis handle
    with its own bounded pool of ``max_connections`` (closed with the limiter)."""
    from dijk.storage import storage_scheme

    if storage_scheme(url) == "memory":
        return MemoryLimiter.shared(url)
    from dijk.storage.redis import RedisStorage

    return RedisLimiter(RedisStorage(url, timeout_s=timeout_s, max_connections=max_connections))
