"""The ``audit:`` configuration section and the writer it builds."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from pydantic import ValidationError

from dijk.audit.chain import verify_store
from dijk.audit.keys import AuditKeys
from dijk.audit.record import AuditRecord
from dijk.audit.settings import AuditSettings, create_writer
from dijk.audit.store import open_store

KEYS = AuditKeys.from_secret(b"settings-test-secret-0123456789abcdef")


def test_defaults_are_the_safe_embedded_ones() -> None:
    settings = AuditSettings()
    assert settings.url == "sqlite:///./.dijk/audit.db"
    assert (settings.durability, settings.on_sink_error) == ("batched", "spool")
    assert settings.pseudonymise_client_ip


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"unknown": 1}, "Extra inputs are not permitted"),
        ({"url": "mysql://db"}, "unsupported audit URL"),
        ({"durability": "eventually"}, "durability"),
        ({"flush_interval_ms": 5000}, "flush_interval_ms"),
        ({"chain": "has space"}, "chain"),
    ],
)
def test_bad_settings_are_rejected_with_the_field_named(
    values: dict[str, object], message: str
) -> None:
    with pytest.raises(ValidationError, match=message):
        AuditSettings.model_validate(values)


async def test_create_writer_spools_under_the_data_dir_and_writes(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'audit.db'}"
    settings = AuditSettings(url=url, chain="gw-1", durability="strict")
    writer = create_writer(settings, data_dir=tmp_path, keys=KEYS)
    async with writer:
        await writer.append(
            AuditRecord(
                time=datetime.now(UTC), request_id="r", method="GET", status=200, decision="allow"
            )
        )
    assert writer.stats.committed == 1
    assert writer.spool_path == tmp_path / "audit-spool" / "dijk_audit-gw-1.spool.jsonl"
    async with open_store(url) as store:
        report = await verify_store(store, KEYS)
    assert report.intact
    assert [chain.chain for chain in report.chains] == ["gw-1"]
