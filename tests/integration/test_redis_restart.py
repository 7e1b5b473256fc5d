"""A Redis restart must not cost requests once Redis answers again.

Every pooled connection opened before the restart is dead afterwards; each would fail
once on its next use. The storage retries such a failure once on a fresh connection, so
no check after the restart is answered as "storage unavailable". Runs against a private
redis-server (never the shared one), which the test restarts.
"""

from __future__ import annotations

import asyncio

import pytest

from dijk.ratelimit.algorithms import Algorithm
from dijk.ratelimit.backend import Bucket, open_limiter
from dijk.storage import StorageUnavailable, open_storage
from tests.support.redis_server import PrivateRedis

POOL = 24


def _bucket(index: int) -> Bucket:
    return Bucket(f"dijk-test:restart:{index}", Algorithm.SLIDING_WINDOW, 1000, 60_000)


async def test_limiter_answers_every_check_after_a_redis_restart(
    redis_server: PrivateRedis,
) -> None:
    limiter = open_limiter(redis_server.url, 1.0, max_connections=POOL)
    try:
        # Concurrent checks fill the pool with POOL open connections.
        first = await asyncio.gather(*(limiter.hit([_bucket(i)]) for i in range(POOL * 2)))
        assert all(result.allowed for result in first)
        redis_server.restart()
        outcomes = await asyncio.gather(
            *(limiter.hit([_bucket(i)]) for i in range(POOL * 2)), return_exceptions=True
        )
        failed = [item for item in outcomes if isinstance(item, BaseException)]
        assert failed == [], f"{len(failed)} checks failed after Redis came back: {failed[:3]}"
        # The new server started empty: each bucket counts from one again.
        assert all(item.outcomes[0].remaining == 999 for item in outcomes)  # type: ignore[union-attr]
    finally:
        await limiter.close()


async def test_storage_commands_survive_a_redis_restart(redis_server: PrivateRedis) -> None:
    storage = open_storage(redis_server.url, timeout_s=1.0)
    try:
        await asyncio.gather(*(storage.set(f"dijk-test:k{i}", b"v") for i in range(POOL * 2)))
        redis_server.restart()
        results = await asyncio.gather(
            *(storage.get(f"dijk-test:k{i}") for i in range(POOL * 2)), return_exceptions=True
        )
        failed = [item for item in results if isinstance(item, BaseException)]
        assert failed == [], f"{len(failed)} commands failed after Redis came back"
        assert results == [None] * (POOL * 2)  # the restarted server has no data
    finally:
        await storage.close()


async def test_a_redis_that_stays_down_is_still_reported_promptly(
    redis_server: PrivateRedis,
) -> None:
    limiter = open_limiter(redis_server.url, 0.5, max_connections=4)
    try:
        await limiter.hit([_bucket(0)])
        redis_server.stop()
        loop = asyncio.get_running_loop()
        started = loop.time()
        with pytest.raises(StorageUnavailable):
            await limiter.hit([_bucket(0)])
        assert loop.time() - started < 1.5  # the one retry does not double a long wait
    finally:
        await limiter.close()
