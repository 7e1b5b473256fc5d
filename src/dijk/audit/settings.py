"""The ``audit:`` section of the configuration, and the writer built from it.

The configuration package embeds :class:`AuditSettings` as its ``audit`` field; the field
names here extend the design's ``audit: {url: ...}`` and never rename it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from dijk.audit.keys import AuditKeys
from dijk.audit.store import AuditURLError, open_store, parse_store_url
from dijk.audit.writer import AuditWriter

__all__ = ["AuditSettings", "create_writer"]


class AuditSettings(BaseModel):
    """Where and how the activity log is written."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    url: str = Field(
        "sqlite:///./.dijk/audit.db",
        description="Audit database: sqlite:///path or postgresql://user@host:port/db;"
        " ?table=name picks the table (default dijk_audit).",
    )
    chain: str = Field(
        "default",
        pattern=r"^[A-Za-z0-9_.:-]{1,64}$",
        description="Name of this instance's hash chain. Every gateway instance writing to"
        " the same database needs its own.",
    )
    durability: Literal["batched", "strict"] = Field(
        "batched",
        description="batched: commit at least every flush_interval_ms; strict: a response"
        " is released only after its record is committed (group commit).",
    )
    on_sink_error: Literal["spool", "deny"] = Field(
        "spool",
        description="When the database is down: spool records to a local file and go on,"
        " or (strict mode) answer 503. Records are spooled in both cases.",
    )
    flush_interval_ms: int = Field(100, ge=1, le=1000, description="Batched mode flush bound.")
    max_batch: int = Field(5000, ge=1, le=100_000, description="Records per commit at most.")
    max_queue: int = Field(
        20_000,
        ge=1,
        description="Records waiting in memory at most; then appends wait. In batched mode a"
        " crash loses at most this many plus one batch being written.",
    )
    checkpoint_every_records: int = Field(
        10_000, ge=1, description="Signed checkpoint after this many records."
    )
    checkpoint_every_s: float = Field(
        60.0, gt=0, description="Signed checkpoint at least this often while records arrive."
    )
    retention_days: int | None = Field(
        None, ge=1, description="Prune records older than this; None keeps everything."
    )
    key_file: str | None = Field(
        None,
        description="File with the audit secret (mode 0600). Default: $DIJK_AUDIT_KEY_FILE"
        " or $DIJK_AUDIT_KEY.",
    )
    spool_dir: str | None = Field(
        None, description="Directory for the spool file; default <data dir>/audit-spool."
    )
    pseudonymise_client_ip: bool = Field(
        True, description="Store client IPs as keyed hashes (recommended under GDPR)."
    )

    @field_validator("url")
    @classmethod
    def _url_is_usable(cls, value: str) -> str:
        try:
            parse_store_url(value)
        except AuditURLError as exc:
            raise ValueError(str(exc)) from None
        return value


def create_writer(
    settings: AuditSettings, *, data_dir: Path, keys: AuditKeys | None = None
) -> AuditWriter:
    """A writer for ``settings`` (call ``await writer.start()`` before use)."""
    if keys is None:
        keys = AuditKeys.load(Path(settings.key_file) if settings.key_file else None)
    parsed = parse_store_url(settings.url)
    spool_dir = Path(settings.spool_dir) if settings.spool_dir else data_dir / "audit-spool"
    spool_path = spool_dir / f"{parsed.table}-{settings.chain}.spool.jsonl"
    store = open_store(settings.url, create=True, durable=settings.durability == "strict")
    return AuditWriter(
        store,
        keys,
        spool_path=spool_path,
        chain=settings.chain,
        durability=settings.durability,
        on_sink_error=settings.on_sink_error,
        flush_interval_s=settings.flush_interval_ms / 1000,
        max_batch=settings.max_batch,
        max_queue=max(settings.max_queue, settings.max_batch),
        checkpoint_every_records=settings.checkpoint_every_records,
        checkpoint_every_s=settings.checkpoint_every_s,
    )
