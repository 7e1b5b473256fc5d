"""The inventory over real SQLite and PostgreSQL: two gateways merge into one inventory.

Each run uses its own table prefix and drops its tables; PostgreSQL is found as the
privacy suite finds it (skipped when missing, a failure under ``CI=true``).
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import orjson
import pytest

from dijk.discovery.db import DiscoveryDatabaseError, open_discovery_db
from dijk.discovery.inventory import Exchange
from dijk.discovery.recorder import DiscoveryRecorder
from dijk.discovery.report import load_inventory
from dijk.discovery.settings import DiscoverySettings
from tests.integration.test_privacy_backends import postgres_url

NOW = 1_796_000_000_000_000


@pytest.fixture(params=["sqlite", "postgresql"])
async def backend(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[tuple[str, str]]:
    prefix = f"d{secrets.token_hex(4)}_"
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path}/audit.db", prefix
        return
    url = await postgres_url()
    yield url, prefix
    connection = await asyncpg.connect(url, timeout=5)
    try:
        for table in ("discovery", "discovery_meta"):
            await connection.execute(f"DROP TABLE IF EXISTS {prefix}{table}")
    finally:
        await connection.close()


def _recorder(url: str, prefix: str) -> DiscoveryRecorder:
    settings = DiscoverySettings(table_prefix=prefix)
    return DiscoveryRecorder(settings, lambda: open_discovery_db(url, prefix))


def _record(recorder: DiscoveryRecorder, path: str, body: dict[str, object], when: int) -> None:
    exchange = Exchange(
        "GET",
        path,
        when,
        200,
        response_type="application/json",
        response_body=orjson.dumps(body),
        route="accounts",
    )
    key = recorder.key("GET", path, None)
    recorder.record(key, exchange, sampled=recorder.wants_sample(key))


async def test_two_gateways_merge_into_one_inventory(backend: tuple[str, str]) -> None:
    url, prefix = backend
    first, second = _recorder(url, prefix), _recorder(url, prefix)
    for index in range(10):
        _record(first, f"/accounts/{index + 100}", {"id": index}, NOW + index)
        _record(second, f"/accounts/{index + 500}", {"id": index, "iban": "x"}, NOW - index)
    # Both flush at once: the writes take turns and nothing is lost. Two processes opening
    # a new SQLite file at the same instant may find it locked; a failed flush keeps its
    # rows for the next one, which is what this checks too.
    flushed = await asyncio.gather(first.flush(), second.flush())
    for recorder, done in zip((first, second), flushed, strict=True):
        assert done or await recorder.flush()
    _record(first, "/accounts/999", {"id": 1}, NOW + 50)
    await first.close()
    await second.close()
    endpoints, meta = await load_inventory(url, prefix)
    (endpoint,) = endpoints
    assert endpoint["template"] == "/accounts/{}"
    assert endpoint["count"] == 21
    assert endpoint["first_us"] == NOW - 9
    assert endpoint["last_us"] == NOW + 50
    assert set(endpoint["responses"]["200"]["p"]) == {"id", "iban"}
    assert meta == {}


async def test_a_failed_flush_keeps_the_endpoints_for_the_next(tmp_path: Path) -> None:
    blocked = tmp_path / "not-a-directory"
    blocked.write_text("")
    recorder = _recorder(f"sqlite:///{blocked}/audit.db", "dijk_")
    _record(recorder, "/accounts/123", {"id": 1}, NOW)
    assert not await recorder.flush()
    assert recorder.failures == 1
    assert len(recorder.learner) == 1
    await recorder.close()


async def test_reading_without_an_inventory_is_a_clear_error(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/audit.db"
    with pytest.raises(DiscoveryDatabaseError, match="no database"):
        await load_inventory(url)
