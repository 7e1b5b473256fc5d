"""A running audit log: the writer, its keys and its live sinks, as one unit.

The gateway builds one per configuration, but a reload that keeps the audit URL and chain
name keeps the running service (``reconfigure``): a hash chain has exactly one writer, so
two configurations must never each open one on the same chain. The service is reference
counted by the configurations using it and closes with the last one.

With ``retention_days`` the service prunes its own chain once a day (first a minute after
start): in a worker thread with its own event loop and database connection, because
pruning verifies the chain first (never a signed cut over a tampered row) and that reads
every record; the request loop must not stall for it.
"""

from __future__ import annotations

import asyncio
import contextlib
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Final

import structlog

from dijk.audit.chain import PruneRefusedError
from dijk.audit.keys import AuditKeys
from dijk.audit.settings import AuditSettings, create_writer, load_keys
from dijk.audit.sinks import Shipper, create_shipper
from dijk.audit.store import AuditStoreError, open_store, prune
from dijk.audit.writer import AuditWriter

__all__ = ["AuditService"]

_LOG: Final = structlog.get_logger("dijk.audit")
_SINK_CLOSE_S: Final = 5.0
_PRUNE_FIRST_S: Final = 60.0
_PRUNE_EVERY_S: Final = 86_400.0


class AuditService:
    def __init__(
        self,
        settings: AuditSettings,
        writer: AuditWriter,
        keys: AuditKeys,
        shippers: list[Shipper],
        generated_key: Path | None = None,
    ) -> None:
        self.settings = settings
        self.writer = writer
        self.keys = keys
        self.shippers = shippers
        self.generated_key = generated_key
        self._users = 0
        self._closed = False
        self._retention: asyncio.Task[None] | None = None

    @classmethod
    def create(
        cls, settings: AuditSettings, data_dir: Path, keys: AuditKeys | None = None
    ) -> AuditService:
        """Load (or, for SQLite, create) the key and build writer and sinks; no I/O else.

        Raises ``AuditKeyError`` / ``ValueError`` with a message for the operator.
        """
        generated = None
        if keys is None:
            keys, generated = load_keys(settings, data_dir)
        writer = create_writer(settings, data_dir=data_dir, keys=keys)
        shippers = [create_shipper(sink) for sink in settings.sinks]
        return cls(settings, writer, keys, shippers, generated)

    @staticmethod
    def identity_of(settings: AuditSettings) -> tuple[str, str]:
        """What makes two configurations share one writer: the store and the chain."""
        return settings.url, settings.chain

    @property
    def identity(self) -> tuple[str, str]:
        return self.identity_of(self.settings)

    def client_pseudonym(self, ip: str) -> str | None:
        """The client IP as records hold it: a keyed pseudonym unless turned off."""
        if not ip:
            return None
        return self.keys.pseudonym(ip) if self.settings.pseudonymise_client_ip else ip

    async def start(self) -> None:
        await self.writer.start()
        self._attach(self.shippers)
        self._retention = asyncio.create_task(self._retention_loop(), name="dijk-audit-retention")

    async def _retention_loop(self) -> None:
        await asyncio.sleep(_PRUNE_FIRST_S)
        while True:
            if self.settings.retention_days is not None:
                await self.prune_now()
            await asyncio.sleep(_PRUNE_EVERY_S)

    async def prune_now(self) -> int:
        """Apply ``retention_days`` to this service's chain now; returns rows deleted."""
        days = self.settings.retention_days
        if days is None:
            return 0
        cutoff = datetime.now(UTC) - timedelta(days=days)
        url, chain, keys = self.settings.url, self.settings.chain, self.keys

        async def job() -> int:
            async with open_store(url) as store:
                deleted = await prune(store, keys, cutoff, [chain])
            return deleted.get(chain, 0)

        try:
            deleted = await asyncio.to_thread(asyncio.run, job())
        except PruneRefusedError as exc:
            _LOG.critical("audit retention: %s", exc)
            return 0
        except (AuditStoreError, OSError) as exc:
            _LOG.warning("audit retention: pruning failed, retried tomorrow: %s", exc)
            return 0
        if deleted:
            _LOG.info("audit retention: %d records older than %d days deleted", deleted, days)
        return deleted

    def _attach(self, shippers: list[Shipper]) -> None:
        for shipper in shippers:
            shipper.start()
            self.writer.add_listener(shipper.offer)

    def acquire(self) -> None:
        self._users += 1

    async def release(self) -> None:
        """One configuration stopped using the service; the last one closes it."""
        self._users -= 1
        if self._users <= 0:
            await self.close()

    async def reconfigure(self, settings: AuditSettings) -> None:
        """Apply a reloaded configuration with the same identity to the running service."""
        self.writer.reconfigure(
            durability=settings.durability,
            on_sink_error=settings.on_sink_error,
            flush_interval_s=settings.flush_interval_ms / 1000,
            max_batch=settings.max_batch,
            max_queue=max(settings.max_queue, settings.max_batch),
            checkpoint_every_records=settings.checkpoint_every_records,
            checkpoint_every_s=settings.checkpoint_every_s,
        )
        if settings.sinks != self.settings.sinks:
            new = [create_shipper(sink) for sink in settings.sinks]
            old, self.shippers = self.shippers, new
            for shipper in old:
                self.writer.remove_listener(shipper.offer)
            self._attach(new)
            await asyncio.gather(*(shipper.close(_SINK_CLOSE_S) for shipper in old))
        self.settings = settings

    async def close(self) -> None:
        """Commit everything queued (SIGTERM, last configuration gone), then the sinks."""
        if self._closed:
            return
        self._closed = True
        if self._retention is not None:
            self._retention.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._retention
        started = self.writer.started
        await self.writer.close()
        stats = self.writer.stats
        if started:  # after a failed start, its error says everything
            _LOG.info(
                "audit: writer closed: %d records committed in %d batches, %d spooled, %d lost",
                stats.committed,
                stats.batches,
                stats.spooled,
                stats.lost,
            )
        await asyncio.gather(*(shipper.close(_SINK_CLOSE_S) for shipper in self.shippers))
