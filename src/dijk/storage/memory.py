"""In-process storage (``memory://``): one gateway instance, nothing shared."""

from __future__ import annotations

import heapq
import time
from collections.abc import Callable

from dijk.storage.base import Storage

_SWEEP_EVERY = 1024


class MemoryStorage(Storage):
    """A dict with expiry; expired keys are dropped on access and by a periodic sweep."""

    def __init__(self, url: str = "memory://", clock: Callable[[], float] = time.monotonic):
        self.url = url
        self._clock = clock
        self._values: dict[str, tuple[bytes | int, float | None]] = {}
        self._expiries: list[tuple[float, str]] = []
        self._operations = 0

    def _live(self, key: str) -> tuple[bytes | int, float | None] | None:
        entry = self._values.get(key)
        if entry is None:
            return None
        expires = entry[1]
        if expires is not None and expires <= self._clock():
            del self._values[key]
            return None
        return entry

    def _tick(self) -> None:
        self._operations += 1
        if self._operations % _SWEEP_EVERY:
            return
        now = self._clock()
        while self._expiries and self._expiries[0][0] <= now:
            _, key = heapq.heappop(self._expiries)
            entry = self._values.get(key)
            if entry is not None and entry[1] is not None and entry[1] <= now:
                del self._values[key]

    def _store(self, key: str, value: bytes | int, ttl_s: float | None) -> None:
        expires = None if ttl_s is None else self._clock() + ttl_s
        self._values[key] = (value, expires)
        if expires is not None:
            heapq.heappush(self._expiries, (expires, key))

    async def get(self, key: str) -> bytes | None:
        self._tick()
        entry = self._live(key)
        if entry is None:
            return None
        value = entry[0]
        return str(value).encode() if isinstance(value, int) else value

    async def set(self, key: str, value: bytes, ttl_s: float | None = None) -> None:
        self._tick()
        self._store(key, value, ttl_s)

    async def delete(self, key: str) -> None:
        self._values.pop(key, None)

    async def exists(self, key: str) -> bool:
        return self._live(key) is not None

    async def incr(self, key: str, amount: int = 1, ttl_s: float | None = None) -> int:
        self._tick()
        entry = self._live(key)
        if entry is None:
            self._store(key, amount, ttl_s)
            return amount
        value, expires = entry
        current = int(value) + amount
        self._values[key] = (current, expires)
        return current

    async def ping(self) -> None:
        return None

    async def close(self) -> None:
        self._values.clear()
        self._expiries.clear()
