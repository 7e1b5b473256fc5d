"""Redis storage (``redis://host:port/db``, ``rediss://`` for TLS): shared by many instances.

One bounded, blocking connection pool per storage; every command has a socket timeout, so
an unreachable Redis costs at most ``timeout_s`` per call and raises
:class:`StorageUnavailable`. ``client`` is public so stages can run atomic Lua scripts.

A command that fails with a *connection* error is retried once, at once, on the same
connection reconnected: after a Redis restart every pooled connection is dead, and
without the retry each of them would fail one request (up to ``max_connections``
refusals after Redis is healthy again). Timeouts are not retried: the command may have
run, and a second wait would double the time a request can be held.
"""

from __future__ import annotations

import math

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError

from dijk.storage.base import Storage, StorageUnavailable

_INCR = """
local value = redis.call('INCRBY', KEYS[1], ARGV[1])
if value == tonumber(ARGV[1]) and tonumber(ARGV[2]) > 0 then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return value
"""


class RedisStorage(Storage):
    def __init__(self, url: str, timeout_s: float = 0.25, max_connections: int = 64) -> None:
        self.url = url
        self.timeout_s = timeout_s
        pool = aioredis.BlockingConnectionPool.from_url(
            url,
            max_connections=max_connections,
            timeout=timeout_s,
            socket_timeout=timeout_s,
            socket_connect_timeout=timeout_s,
            retry=stale_connection_retry(),
        )
        self.client: aioredis.Redis = aioredis.Redis(connection_pool=pool)
        self._incr = self.client.register_script(_INCR)

    async def get(self, key: str) -> bytes | None:
        try:
            value = await self.client.get(key)
        except (RedisConnectionError, RedisTimeoutError, OSError) as exc:
            raise StorageUnavailable(f"redis: {type(exc).__name__}") from exc
        if value is None or isinstance(value, bytes):
            return value
        return str(value).encode()

    async def set(self, key: str, value: bytes, ttl_s: float | None = None) -> None:
        try:
            if ttl_s is None:
                await self.client.set(key, value)
            else:
                await self.client.set(key, value, px=_milliseconds(ttl_s))
        except (RedisConnectionError, RedisTimeoutError, OSError) as exc:
            raise StorageUnavailable(f"redis: {type(exc).__name__}") from exc

    async def delete(self, key: str) -> None:
        try:
            await self.client.delete(key)
        except (RedisConnectionError, RedisTimeoutError, OSError) as exc:
            raise StorageUnavailable(f"redis: {type(exc).__name__}") from exc

    async def exists(self, key: str) -> bool:
        try:
            return bool(await self.client.exists(key))
        except (RedisConnectionError, RedisTimeoutError, OSError) as exc:
            raise StorageUnavailable(f"redis: {type(exc).__name__}") from exc

    async def incr(self, key: str, amount: int = 1, ttl_s: float | None = None) -> int:
        ttl = 0 if ttl_s is None else _milliseconds(ttl_s)
        try:
            return int(await self._incr(keys=[key], args=[amount, ttl]))
        except (RedisConnectionError, RedisTimeoutError, OSError) as exc:
            raise StorageUnavailable(f"redis: {type(exc).__name__}") from exc

    async def ping(self) -> None:
        try:
            await self.client.ping()
        except (RedisError, OSError) as exc:
            raise StorageUnavailable(f"redis: {type(exc).__name__}") from exc

    async def close(self) -> None:
        await self.client.aclose()


def stale_connection_retry() -> Retry:
    """One immediate retry on a fresh connection, for connection errors only."""
    return Retry(NoBackoff(), 1, supported_errors=(RedisConnectionError,))


def _milliseconds(seconds: float) -> int:
    return max(1, math.ceil(seconds * 1000))
