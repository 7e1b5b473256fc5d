"""Local append-only spool for sealed records while the audit store is down.

One JSON object per line (``{"chain", "seq", "prev_hash", "hash", "record"}`` where
``record`` is the canonical body), appended in sequence order, so replay is a read from
the front. Replay progress is kept in a ``.offset`` file beside it; losing that file only
means records are offered to the store again, which ignores the ones it already has.

A process killed in the middle of a write leaves a partial last line. That record was
never acknowledged (strict mode acknowledges after ``fsync``), so :meth:`Spool.repair`
cuts it off before the file is appended to again.

A spool belongs to one writer, like its chain: the writer holds ``<spool>.lock``
(:meth:`Spool.lock`) from start to close, so two gateways that would share a spool file
(same chain and table, same spool directory) cannot interleave their records in it.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Final

import orjson
import structlog

from dijk.audit.chain import ChainedRecord
from dijk.audit.lock import LockFile
from dijk.audit.record import AuditRecord, Finding, canonical_body, datetime_from_us

__all__ = ["Spool"]

_LOG: Final = structlog.get_logger("dijk.audit.spool")
_TAIL_WINDOW: Final = 1 << 16


def _line(sealed: ChainedRecord) -> bytes:
    return orjson.dumps(
        {
            "chain": sealed.chain,
            "seq": sealed.seq,
            "prev_hash": sealed.prev_hash.hex(),
            "hash": sealed.hash.hex(),
            "record": canonical_body(sealed.record, sealed.chain),
        },
        option=orjson.OPT_APPEND_NEWLINE,
    )


def _parse(line: bytes) -> ChainedRecord:
    data = orjson.loads(line)
    body: dict[str, Any] = data["record"]
    record = AuditRecord(
        time=datetime_from_us(body["time_us"]),
        request_id=body["request_id"],
        method=body["method"],
        status=body["status"],
        decision=body["decision"],
        route=body["route"],
        path_template=body["path_template"],
        reason=body["reason"],
        consumer=body["consumer"],
        auth_method=body["auth_method"],
        credential_id=body["credential_id"],
        client_ip=body["client_ip"],
        findings=tuple(
            Finding(rule_id=item["rule_id"], field=item["field"]) for item in body["findings"]
        ),
        gateway_latency_us=body["gateway_latency_us"],
        upstream_latency_us=body["upstream_latency_us"],
        bytes_in=body["bytes_in"],
        bytes_out=body["bytes_out"],
        pii_categories=tuple(body["pii_categories"]),
    )
    return ChainedRecord(
        data["chain"],
        data["seq"],
        bytes.fromhex(data["prev_hash"]),
        bytes.fromhex(data["hash"]),
        record,
    )


class Spool:
    """The spool file of one chain. All blocking file work runs in a worker thread."""

    def __init__(self, path: Path):
        self.path = path
        self.offset_path = path.with_name(path.name + ".offset")
        self.lock_path = path.with_name(path.name + ".lock")

    # -- synchronous parts (run in a thread) ------------------------------------------

    def lock(self) -> LockFile:
        """Lock the spool for its one writer (creating its directory).

        Raises ``LockHeldError`` when another writer holds it, ``OSError`` when the lock
        file cannot be made.
        """
        self.path.parent.mkdir(parents=True, exist_ok=True)
        return LockFile.acquire(self.lock_path)

    def _size(self) -> int:
        try:
            return self.path.stat().st_size
        except FileNotFoundError:
            return 0

    def _offset(self) -> int:
        try:
            return int(self.offset_path.read_text(encoding="ascii").strip() or 0)
        except (FileNotFoundError, ValueError):
            return 0

    def repair(self) -> None:
        """Cut a partial last line left by a crash."""
        size = self._size()
        if size == 0:
            return
        with self.path.open("r+b") as handle:
            start = max(0, size - _TAIL_WINDOW)
            while True:
                handle.seek(start)
                chunk = handle.read(size - start)
                end = chunk.rfind(b"\n")
                if end >= 0 or start == 0:
                    keep = start + end + 1 if end >= 0 else 0
                    break
                start = max(0, start - _TAIL_WINDOW)
            if keep != size:
                _LOG.warning(
                    "audit spool %s: dropping %d bytes of a torn write", self.path, size - keep
                )
                handle.truncate(keep)
                os.fsync(handle.fileno())

    def last(self) -> ChainedRecord | None:
        """The newest spooled record (the chain's tail while the spool exists)."""
        size = self._size()
        if size == 0:
            return None
        with self.path.open("rb") as handle:
            start = max(0, size - _TAIL_WINDOW)
            while True:
                handle.seek(start)
                lines = handle.read(size - start).splitlines()
                if len(lines) > 1 or start == 0:
                    return _parse(lines[-1]) if lines else None
                start = max(0, start - _TAIL_WINDOW)

    def _append(self, rows: Sequence[ChainedRecord], sync: bool) -> None:
        data = b"".join(_line(sealed) for sealed in rows)
        created = not self.path.exists()
        if created:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        descriptor = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            view = memoryview(data)
            while view:
                written = os.write(descriptor, view)
                view = view[written:]
            if sync:
                os.fsync(descriptor)
        finally:
            os.close(descriptor)
        if created and sync:
            directory = os.open(self.path.parent, os.O_RDONLY)
            try:
                os.fsync(directory)
            finally:
                os.close(directory)

    def _read(self, limit: int) -> tuple[list[ChainedRecord], int]:
        offset = self._offset()
        rows: list[ChainedRecord] = []
        try:
            handle = self.path.open("rb")
        except FileNotFoundError:
            return rows, offset
        with handle:
            handle.seek(offset)
            while len(rows) < limit:
                line = handle.readline()
                if not line.endswith(b"\n"):
                    break
                offset += len(line)
                try:
                    rows.append(_parse(line))
                except (ValueError, KeyError, TypeError) as exc:
                    # The chain will show the gap as deleted records; say why here.
                    _LOG.error(
                        "audit spool %s: unreadable line at byte %d: %s", self.path, offset, exc
                    )
        return rows, offset

    def _advance(self, offset: int) -> None:
        temporary = self.offset_path.with_name(self.offset_path.name + ".tmp")
        temporary.write_text(str(offset), encoding="ascii")
        temporary.replace(self.offset_path)

    def _remove(self) -> None:
        self.path.unlink(missing_ok=True)
        self.offset_path.unlink(missing_ok=True)

    # -- async API ---------------------------------------------------------------------

    async def append(self, rows: Sequence[ChainedRecord], *, sync: bool) -> None:
        await asyncio.to_thread(self._append, rows, sync)

    async def read(self, limit: int) -> tuple[list[ChainedRecord], int]:
        """Up to ``limit`` records after the replay offset, and the offset after them."""
        return await asyncio.to_thread(self._read, limit)

    async def advance(self, offset: int) -> None:
        await asyncio.to_thread(self._advance, offset)

    async def at_end(self, offset: int) -> bool:
        return offset >= await asyncio.to_thread(self._size)

    async def remove(self) -> None:
        await asyncio.to_thread(self._remove)

    def pending_bytes(self) -> int:
        return max(0, self._size() - self._offset())
