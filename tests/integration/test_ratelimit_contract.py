"""One contract suite for the limiter, run against memory:// and a real Redis.

The Redis backend runs Lua; the memory backend runs the Python algorithms. The same
expectations hold for both, which is what keeps the two implementations in step.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import pytest

from dijk.ratelimit.algorithms import Algorithm, quota_period
from dijk.ratelimit.backend import Bucket, Limiter, MemoryLimiter, open_limiter
from dijk.storage import StorageUnavailable
from tests.conftest import require_service
from tests.support.redis import REDIS_URL, redis_reachable


@pytest.fixture(params=["memory", "redis"])
async def limiter(request: pytest.FixtureRequest) -> AsyncIterator[Limiter]:
    if request.param == "redis":
        require_service(await redis_reachable(), f"Redis is not reachable at {REDIS_URL}")
        backend = open_limiter(REDIS_URL, 1.0)
    else:
        backend = MemoryLimiter()
    yield backend
    await backend.close()


def key() -> str:
    return f"dijk-test:rl:{uuid.uuid4().hex}"


def sliding(limit: int, window_s: float, name: str | None = None) -> Bucket:
    return Bucket(name or key(), Algorithm.SLIDING_WINDOW, limit, window_s * 1000)


async def test_sliding_window_admits_the_limit_then_refuses(limiter: Limiter) -> None:
    bucket = sliding(5, 3600)
    remaining = []
    for _ in range(5):
        result = await limiter.hit([bucket])
        assert result.allowed
        remaining.append(result.outcomes[0].remaining)
    assert remaining[-1] == 0
    assert remaining == sorted(remaining, reverse=True)
    refused = await limiter.hit([bucket])
    assert not refused.allowed
    outcome = refused.outcomes[0]
    assert outcome.remaining == 0
    assert 0 < outcome.retry_after_ms <= 2 * 3600 * 1000


async def test_a_refused_request_counts_in_no_bucket(limiter: Limiter) -> None:
    roomy, tight = sliding(10, 3600), sliding(1, 3600)
    assert (await limiter.hit([roomy, tight])).allowed
    for _ in range(3):
        result = await limiter.hit([roomy, tight])
        assert not result.allowed
        assert [o.allowed for o in result.outcomes] == [True, False]
    # Only the one admitted request was counted in the roomy bucket.
    assert (await limiter.hit([roomy])).outcomes[0].remaining == 8


async def test_concurrent_hits_admit_exactly_the_limit(limiter: Limiter) -> None:
    bucket = sliding(50, 3600)
    results = await asyncio.gather(*(limiter.hit([bucket]) for _ in range(200)))
    assert sum(result.allowed for result in results) == 50


async def test_gcra_allows_the_burst_and_refills(limiter: Limiter) -> None:
    bucket = Bucket(key(), Algorithm.GCRA, 10, 100.0, 4)  # 10/s, burst 4
    results = [await limiter.hit([bucket]) for _ in range(6)]
    assert [r.allowed for r in results] == [True, True, True, True, False, False]
    assert results[0].outcomes[0].remaining == 3
    assert 0 < results[4].outcomes[0].retry_after_ms <= 100
    await asyncio.sleep(0.25)
    assert (await limiter.hit([bucket])).allowed


async def test_sliding_window_admits_again_after_the_window(limiter: Limiter) -> None:
    bucket = sliding(3, 0.2)
    for _ in range(3):
        assert (await limiter.hit([bucket])).allowed
    assert not (await limiter.hit([bucket])).allowed
    await asyncio.sleep(0.45)  # two windows later nothing of the old ones counts
    assert (await limiter.hit([bucket])).allowed


@pytest.mark.parametrize("algorithm", [Algorithm.QUOTA_DAY, Algorithm.QUOTA_MONTH])
async def test_calendar_quota_resets_at_the_utc_period_end(
    limiter: Limiter, algorithm: Algorithm
) -> None:
    bucket = Bucket(key(), algorithm, 2)
    assert (await limiter.hit([bucket])).allowed
    second = await limiter.hit([bucket])
    assert second.allowed
    assert second.outcomes[0].remaining == 0
    refused = await limiter.hit([bucket])
    assert not refused.allowed
    _, ends = quota_period(refused.now_ms, algorithm)
    # The backend (Lua on Redis) computes the same period end as the Python algorithm.
    assert abs(refused.outcomes[0].retry_after_ms - (ends - refused.now_ms)) <= 2


async def test_refund_gives_back_one_request(limiter: Limiter) -> None:
    bucket = sliding(2, 3600)
    first = await limiter.hit([bucket])
    assert (await limiter.hit([bucket])).allowed
    assert not (await limiter.hit([bucket])).allowed
    await limiter.refund(bucket, first.outcomes[0].token)
    assert (await limiter.hit([bucket])).allowed
    assert not (await limiter.hit([bucket])).allowed


async def test_unreachable_redis_raises_storage_unavailable_quickly() -> None:
    url = "redis://127.0.0.1:1/0"
    backend = open_limiter(url, 0.2)
    loop = asyncio.get_running_loop()
    started = loop.time()
    with pytest.raises(StorageUnavailable):
        await backend.hit([sliding(1, 1)])
    assert loop.time() - started < 1.0
    await backend.close()


async def test_memory_limiter_refuses_new_keys_past_its_bound() -> None:
    backend = MemoryLimiter(max_keys=3)
    for _ in range(3):
        await backend.hit([sliding(1, 60)])
    with pytest.raises(StorageUnavailable):
        await backend.hit([sliding(1, 60)])


async def test_memory_limiter_is_shared_per_url_across_reloads() -> None:
    url = f"memory://test-{uuid.uuid4().hex}"
    assert MemoryLimiter.shared(url) is MemoryLimiter.shared(url)


async def test_redis_pool_is_bounded_and_checks_queue_for_it() -> None:
    require_service(await redis_reachable(), f"Redis is not reachable at {REDIS_URL}")
    backend = open_limiter(REDIS_URL, 1.0, max_connections=2)
    assert backend.storage is not None
    pool = backend.storage.client.connection_pool  # type: ignore[attr-defined]
    assert pool.max_connections == 2
    bucket = sliding(1000, 60)
    results = await asyncio.gather(*(backend.hit([bucket]) for _ in range(50)))
    assert all(result.allowed for result in results)
    assert len(pool._available_connections) + len(pool._in_use_connections) <= 2
    await backend.close()
