"""The audit service the gateway runs: keys found or created, retention applied by the
service itself, one writer kept across reloads of the same store and chain."""

from __future__ import annotations

import stat
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from dijk.alerts.settings import AlertSettings
from dijk.audit.chain import verify_store
from dijk.audit.keys import AuditKeyError, AuditKeys
from dijk.audit.record import AuditRecord
from dijk.audit.service import AuditService
from dijk.audit.settings import AuditSettings, load_keys
from dijk.audit.store import AuditQuery, ChainInUseError, open_store
from dijk.stages.audit import AuditResources

KEYS = AuditKeys.from_secret(b"service-test-secret-0123456789abcdefgh")


@pytest.fixture(autouse=True)
def no_key_in_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DIJK_AUDIT_KEY", raising=False)
    monkeypatch.delenv("DIJK_AUDIT_KEY_FILE", raising=False)


def test_sqlite_without_a_key_creates_one_beside_the_database_once(tmp_path: Path) -> None:
    settings = AuditSettings(url=f"sqlite:///{tmp_path / 'data' / 'audit.db'}")
    keys, created = load_keys(settings)
    assert created == tmp_path / "data" / "audit.key"
    assert stat.S_IMODE(created.stat().st_mode) == 0o600
    again, created_again = load_keys(settings)
    assert created_again is None
    assert again.hmac_key == keys.hmac_key


def test_postgresql_or_generate_key_off_needs_a_key(tmp_path: Path) -> None:
    for settings in (
        AuditSettings(url="postgresql://dijk@127.0.0.1:5432/test"),
        AuditSettings(url=f"sqlite:///{tmp_path / 'audit.db'}", generate_key=False),
    ):
        with pytest.raises(AuditKeyError, match="dijk audit keygen"):
            load_keys(settings)


async def test_retention_prunes_old_records_and_the_chain_still_verifies(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'audit.db'}"
    service = AuditService.create(AuditSettings(url=url, retention_days=30), tmp_path, KEYS)
    await service.start()
    now = datetime.now(UTC)
    for number in range(20):
        moment = now - timedelta(days=60) if number < 12 else now
        await service.writer.append(
            AuditRecord(
                time=moment, request_id=f"r{number}", method="GET", status=200, decision="allow"
            )
        )
    await service.writer.flush()
    assert await service.prune_now() == 12
    await service.close()
    async with open_store(url) as store:
        report = await verify_store(store, KEYS)
        page = await store.query(AuditQuery(limit=100))
    assert report.intact
    assert [row.record.request_id for row in page.records] == [f"r{n}" for n in range(12, 20)]


async def test_a_reload_with_the_same_store_and_chain_keeps_the_running_writer(
    tmp_path: Path,
) -> None:
    url = f"sqlite:///{tmp_path / 'audit.db'}"
    first = AuditResources(AuditSettings(url=url, key_file=None), AlertSettings())
    (tmp_path / "audit.key").write_text("k" * 48)
    (tmp_path / "audit.key").chmod(0o600)
    await first.start()
    assert first.service is not None
    strict = AuditResources(AuditSettings(url=url, durability="strict"), AlertSettings())
    await strict.start(first)
    assert strict.service is first.service
    assert first.service.writer.durability == "strict"
    other = AuditResources(AuditSettings(url=url, chain="other"), AlertSettings())
    await other.start(strict)
    assert other.service is not first.service
    await first.close()  # the old configuration drains: the writer stays for the new one
    assert first.service.writer.running
    await strict.close()
    assert not first.service.writer.running
    await other.close()


async def test_a_reload_naming_the_same_file_differently_cannot_start_a_second_writer(
    tmp_path: Path,
) -> None:
    """Two URLs, one file, one chain: not the same identity, so a reload would build a
    second writer beside the running one. The chain's lock refuses it (the reload fails and
    the running configuration keeps its writer)."""
    (tmp_path / "audit.key").write_text("k" * 48)
    (tmp_path / "audit.key").chmod(0o600)
    (tmp_path / "link").symlink_to(tmp_path)
    first = AuditResources(AuditSettings(url=f"sqlite:///{tmp_path}/audit.db"), AlertSettings())
    await first.start()
    assert first.service is not None
    renamed = AuditResources(
        AuditSettings(url=f"sqlite:///{tmp_path}/link/audit.db"), AlertSettings()
    )
    with pytest.raises(ChainInUseError, match="by this gateway already"):
        await renamed.start(first)
    assert renamed.service is None
    assert first.service.writer.running
    await first.close()
    await renamed.start()  # the first writer is gone: the chain is free
    await renamed.close()
