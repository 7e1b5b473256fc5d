"""One contract suite, run against every storage backend over real connections."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import pytest

from dijk.storage import Storage, StorageUnavailable, open_storage
from tests.conftest import require_service
from tests.support.redis import REDIS_URL, redis_reachable


@pytest.fixture(params=["memory", "redis"])
async def storage(request: pytest.FixtureRequest) -> AsyncIterator[Storage]:
    if request.param == "redis":
        require_service(await redis_reachable(), f"Redis is not reachable at {REDIS_URL}")
        backend = open_storage(REDIS_URL, timeout_s=2.0)  # atomicity, not latency, is tested
    else:
        backend = open_storage("memory://")
    yield backend
    await backend.close()


def key() -> str:
    return f"dijk-test:{uuid.uuid4().hex}"


async def test_set_get_delete_roundtrip(storage: Storage) -> None:
    name = key()
    assert await storage.get(name) is None
    await storage.set(name, b"value")
    assert await storage.get(name) == b"value"
    assert await storage.exists(name)
    await storage.delete(name)
    assert not await storage.exists(name)


async def test_values_expire_after_their_ttl(storage: Storage) -> None:
    name = key()
    await storage.set(name, b"v", ttl_s=0.15)
    assert await storage.exists(name)
    await asyncio.sleep(0.3)
    assert not await storage.exists(name)
    assert await storage.get(name) is None


async def test_incr_counts_and_ttl_applies_from_first_increment(storage: Storage) -> None:
    name = key()
    assert await storage.incr(name, ttl_s=0.3) == 1
    assert await storage.incr(name, 4, ttl_s=10) == 5
    await asyncio.sleep(0.45)
    assert await storage.incr(name, ttl_s=0.3) == 1


async def test_concurrent_increments_are_atomic(storage: Storage) -> None:
    name = key()
    results = await asyncio.gather(*(storage.incr(name, ttl_s=5) for _ in range(200)))
    assert sorted(results) == list(range(1, 201))


async def test_unreachable_redis_raises_storage_unavailable_quickly() -> None:
    backend = open_storage("redis://127.0.0.1:1/0", timeout_s=0.2)
    loop = asyncio.get_running_loop()
    started = loop.time()
    with pytest.raises(StorageUnavailable):
        await backend.incr("x")
    assert loop.time() - started < 2
    await backend.close()


def test_unknown_scheme_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="unsupported storage URL scheme"):
        open_storage("mongodb://x")
