"""The privacy tables over real SQLite and PostgreSQL: one suite, both backends.

PostgreSQL is found as the audit contract suite finds it (``DIJK_TEST_POSTGRES_URL`` or the
usual local users on 127.0.0.1:5432/test); missing, the PostgreSQL cases skip, or fail
under ``CI=true``. Each run uses its own table prefix and drops its tables.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg
import pytest

from dijk.privacy.breach import BreachFilter, build_breach
from dijk.privacy.datamap import DataMapRecorder, Observation
from dijk.privacy.db import open_privacy_db
from dijk.privacy.report import build_register
from tests.conftest import require_service

POSTGRES_URLS = (
    [os.environ["DIJK_TEST_POSTGRES_URL"]]
    if os.environ.get("DIJK_TEST_POSTGRES_URL")
    else ["postgresql://postgres@127.0.0.1:5432/test", "postgresql://root@127.0.0.1:5432/test"]
)
START = datetime(2026, 5, 4, 8, 0, tzinfo=UTC)
TABLES = ("datamap", "datamap_consumer", "datamap_meta", "exposure", "exposure_subject")


async def postgres_url() -> str:
    errors = []
    for url in POSTGRES_URLS:
        try:
            connection = await asyncpg.connect(url, timeout=3)
        except (OSError, asyncpg.PostgresError, TimeoutError) as exc:
            errors.append(f"{url}: {type(exc).__name__}")
            continue
        await connection.close()
        return url
    require_service(False, f"PostgreSQL not reachable for the privacy suite ({errors})")
    raise AssertionError  # pragma: no cover - require_service skipped or failed


@pytest.fixture(params=["sqlite", "postgresql"])
async def backend(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[tuple[str, str]]:
    prefix = f"t{secrets.token_hex(4)}_"
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path}/audit.db", prefix
        return
    url = await postgres_url()
    yield url, prefix
    connection = await asyncpg.connect(url, timeout=5)
    try:
        for table in TABLES:
            await connection.execute(f"DROP TABLE IF EXISTS {prefix}{table}")
    finally:
        await connection.close()


def observation(minute: int, consumer: str, subjects: set[str]) -> Observation:
    return Observation(
        time_us=int((START + timedelta(minutes=minute)).timestamp() * 1_000_000),
        method="GET",
        endpoint="/api/v1/accounts",
        route="accounts",
        consumer=consumer,
        auth_method="api_key",
        scopes=("accounts:read",),
        client="client:1",
        client_net="net:1",
        response={("$.accounts[*].email", "email"): len(subjects)},
        masked=frozenset({"email"}),
        subjects={"email": subjects},
        exposed=True,
    )


async def test_flushes_add_up_and_both_reports_read_them(backend: tuple[str, str]) -> None:
    url, prefix = backend

    def database() -> object:
        return open_privacy_db(url, prefix)

    first = DataMapRecorder(database, bucket_s=60, meta={"region": "NL"})  # type: ignore[arg-type]
    second = DataMapRecorder(database, bucket_s=60)  # type: ignore[arg-type]
    first.record(observation(1, "app", {"pii:email:a", "pii:email:b"}))
    second.record(observation(1, "app", {"pii:email:b", "pii:email:c"}))  # another instance
    second.record(observation(2, "partner", {"pii:email:d"}))
    assert await first.flush()
    assert await second.flush()
    await first.close()
    await second.close()

    async with open_privacy_db(url, prefix) as db:
        await db.connect(create=False)
        register = await build_register(db)
        report = await build_breach(
            db,
            BreachFilter(since=START, until=START + timedelta(hours=1), consumer="app"),
            detected=START + timedelta(hours=1),
            now=START + timedelta(hours=2),
        )
    (entry,) = register.processing
    use = entry.fields[("response", "$.accounts[*].email", "email")]
    assert (use.records, use.occurrences, use.masked) == (3, 5, 5)
    assert use.consumers == {"app": 4, "partner": 1}
    totals = report.totals()
    assert totals["records"] == 2
    assert totals["distinct_subjects_by_category"] == {"email": 3}
    assert report.as_dict()["detection"]["notification_deadline"] == "2026-05-07T09:00:00Z"
