"""Whether the test Redis answers (tests that need it skip, or fail under CI=true)."""

from __future__ import annotations

import asyncio
import os

from dijk.storage import StorageUnavailable, open_storage

REDIS_URL = os.environ.get("DIJK_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")


async def redis_reachable(url: str = REDIS_URL) -> bool:
    storage = open_storage(url, timeout_s=0.5)
    try:
        await storage.ping()
        return True
    except StorageUnavailable:
        return False
    finally:
        await storage.close()


def redis_up(url: str = REDIS_URL) -> bool:
    """The same, from synchronous code (no event loop running)."""
    return asyncio.run(redis_reachable(url))
