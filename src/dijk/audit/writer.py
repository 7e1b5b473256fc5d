"""The audit writer: the one object the gateway's log phase talks to.

Usage (one writer per gateway process, owned by the event loop that serves requests)::

    writer = AuditWriter(open_store(url, create=True), AuditKeys.load(), spool_path=...)
    await writer.start()
    ...
    await writer.append(record)   # in the log phase of every request
    ...
    await writer.close()          # on SIGTERM: flushes, replays the spool, checkpoints

``append`` puts the record in a bounded in-memory queue. A single background task takes
batches from it, seals them into the hash chain (sequence number + HMAC) and commits each
batch in one transaction: group commit. Durability:

``batched`` (default)
    ``append`` returns once the record is queued; a batch is committed at least every
    ``flush_interval_s`` (100 ms). A crash loses at most the queued records.
``strict``
    ``append`` returns once the record is committed (or, when the store is down and
    ``on_sink_error`` is ``spool``, written and fsynced to the spool). Concurrent requests
    share one commit, so the cost is one commit per batch, not per request.

When the store fails, batches go to the spool file (in order) and the writer probes the
store every ``retry_interval_s`` (0.5 s), backing off to at most ``max_retry_interval_s``
(1 s): under ``on_sink_error="deny"`` every request is refused while the store is down,
so the refusals must end promptly when it returns (a probe is one connection attempt).
Once it answers, the spool is replayed ahead of newer records.

``start`` anchors the tail it finds with a signed checkpoint: a writer that died between
two checkpoints (SIGKILL) left its newest records unanchored, and a clean stop with no
new records would not add one. With
``on_sink_error="deny"`` a strict ``append`` raises :class:`AuditUnavailableError` while
the store is down (the record is still spooled), so the gateway can answer 503.

When the queue is full, ``append`` waits: back-pressure rather than dropping records.

One chain, one writer: ``start`` first claims the chain in the store
(:meth:`AuditStore.claim`: a lock file beside a SQLite database, an advisory lock in
PostgreSQL) and locks its spool, and raises :class:`ChainInUseError` at once when another
writer (another gateway process, or another writer in this one) holds either. Both locks
are held until ``close`` and vanish with the process, so a crash never leaves one behind.

Listeners (:meth:`AuditWriter.add_listener`) see every batch once it is committed or
spooled, sealed (with ``seq`` and hash): the live SIEM sinks hang there, so a copy shipped
elsewhere always carries the place it has in the tamper-evident chain.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final, Literal

import structlog

from dijk.audit import metrics
from dijk.audit.chain import ZERO_HASH, ChainedRecord, ChainSealer, Checkpoint
from dijk.audit.keys import AuditKeys
from dijk.audit.lock import LockFile, LockHeldError
from dijk.audit.record import AuditRecord
from dijk.audit.spool import Spool
from dijk.audit.store import (
    AuditSinkError,
    AuditStore,
    AuditStoreError,
    ChainConflictError,
    ChainInUseError,
)

__all__ = [
    "AuditUnavailableError",
    "AuditWriter",
    "AuditWriterClosedError",
    "Durability",
    "OnSinkError",
    "WriterStats",
]

Durability = Literal["batched", "strict"]
OnSinkError = Literal["spool", "deny"]

_LOG: Final = structlog.get_logger("dijk.audit.writer")
_SEAL_SLICE: Final = 256

Listener = Callable[[Sequence[ChainedRecord]], None]
"""Called with each persisted batch; must not block (hand the rows to a queue)."""


class AuditUnavailableError(Exception):
    """The record could not be committed to the audit store (fail-closed: answer 503)."""


class AuditWriterClosedError(AuditUnavailableError):
    """``append`` after ``close`` (or after the writer task failed)."""


@dataclass(slots=True)
class WriterStats:
    """Counters for metrics and for the benchmark."""

    appended: int = 0
    committed: int = 0
    spooled: int = 0
    replayed: int = 0
    lost: int = 0
    batches: int = 0
    checkpoints: int = 0
    sink_failures: int = 0


@dataclass(slots=True)
class _Prepared:
    """A sealed batch on its way to the store."""

    sealed: list[ChainedRecord]
    futures: list[asyncio.Future[None]]
    checkpoint: Checkpoint | None
    # What was sealed, in order, and the chain's tail before it: enough to seal the
    # batch again (a refused strict record replaced by what its client saw).
    batch: list[tuple[AuditRecord, asyncio.Future[None] | None]]
    start: tuple[int, bytes]


class AuditWriter:
    def __init__(
        self,
        store: AuditStore,
        keys: AuditKeys,
        *,
        spool_path: Path,
        chain: str = "default",
        durability: Durability = "batched",
        on_sink_error: OnSinkError = "spool",
        flush_interval_s: float = 0.1,
        max_batch: int = 5000,
        max_queue: int = 20_000,
        checkpoint_every_records: int = 10_000,
        checkpoint_every_s: float = 60.0,
        sink_timeout_s: float = 10.0,
        retry_interval_s: float = 0.5,
        max_retry_interval_s: float = 1.0,
    ):
        if durability not in ("batched", "strict"):
            raise ValueError(f"durability must be batched or strict, not {durability!r}")
        if on_sink_error not in ("spool", "deny"):
            raise ValueError(f"on_sink_error must be spool or deny, not {on_sink_error!r}")
        if max_batch < 1 or max_queue < max_batch:
            raise ValueError("need 1 <= max_batch <= max_queue")
        self._store = store
        self._keys = keys
        self._spool = Spool(spool_path)
        self._spool_lock: LockFile | None = None
        self.chain = chain
        self.durability: Durability = durability
        self.on_sink_error: OnSinkError = on_sink_error
        self._flush_interval = flush_interval_s
        self._max_batch = max_batch
        self._max_queue = max_queue
        self._checkpoint_records = checkpoint_every_records
        self._checkpoint_seconds = checkpoint_every_s
        self._sink_timeout = sink_timeout_s
        self._retry_interval = retry_interval_s
        self._max_retry_interval = max_retry_interval_s
        self.stats = WriterStats()

        self._pending: list[tuple[AuditRecord, asyncio.Future[None] | None]] = []
        # Strict appends that said what to record instead if their commit is refused.
        self._if_refused: dict[asyncio.Future[None], AuditRecord] = {}
        self._first_pending_at = 0.0
        self._wake = asyncio.Event()
        self._space = asyncio.Event()
        self._flush_waiters: list[tuple[int, asyncio.Future[None]]] = []
        self._appended = 0
        self._done = 0
        self._sealer = ChainSealer(keys.hmac_key, chain)
        self._spooling = False
        self._retry_delay = retry_interval_s
        self._next_retry = 0.0
        self._last_checkpoint_seq = 0
        self._last_checkpoint_at = 0.0
        self._task: asyncio.Task[None] | None = None
        self._closing = False
        self._stopped = False
        self._failure: BaseException | None = None
        self._listeners: list[Listener] = []
        self._overflow_logged = 0.0
        self._probed_at = -math.inf

    # -- public API --------------------------------------------------------------------

    @property
    def store(self) -> AuditStore:
        """The store written to (readers such as the admin API query it too)."""
        return self._store

    @property
    def started(self) -> bool:
        """True once ``start`` succeeded (and still after ``close``)."""
        return self._task is not None

    @property
    def running(self) -> bool:
        """True between ``start`` and ``close`` while the writer task is alive."""
        return self._task is not None and not self._stopped

    def add_listener(self, listener: Listener) -> None:
        """Call ``listener`` with every batch once it is committed or spooled."""
        self._listeners.append(listener)

    def remove_listener(self, listener: Listener) -> None:
        if listener in self._listeners:
            self._listeners.remove(listener)

    def reconfigure(
        self,
        *,
        durability: Durability,
        on_sink_error: OnSinkError,
        flush_interval_s: float,
        max_batch: int,
        max_queue: int,
        checkpoint_every_records: int,
        checkpoint_every_s: float,
    ) -> None:
        """Apply new runtime settings to a running writer (configuration reload).

        The chain, store and keys stay: a reload that keeps the audit URL and chain name
        keeps this writer, so the chain continues without a second writer racing it.
        """
        if max_batch < 1 or max_queue < max_batch:
            raise ValueError("need 1 <= max_batch <= max_queue")
        self.durability = durability
        self.on_sink_error = on_sink_error
        self._flush_interval = flush_interval_s
        self._max_batch = max_batch
        self._max_queue = max_queue
        self._checkpoint_records = checkpoint_every_records
        self._checkpoint_seconds = checkpoint_every_s
        self._space.set()
        self._wake.set()

    @property
    def sink_available(self) -> bool:
        """False while records go to the spool instead of the store."""
        return not self._spooling

    async def probe(self, timeout_s: float = 2.0, min_interval_s: float = 1.0) -> bool:
        """Does the store answer now? For readiness checks between writes.

        Without traffic the writer learns of an outage only at its next write; a failed
        probe switches it to the spool at once (so requests are refused before they are
        forwarded under ``on_sink_error="deny"``), and its own retries take it back. At
        most one probe per ``min_interval_s``; in between the last answer stands.
        """
        if self._spooling or not self.running:
            return self.sink_available
        now = time.monotonic()
        if now - self._probed_at < min_interval_s:
            return self.sink_available
        self._probed_at = now
        try:
            await asyncio.wait_for(self._store.connect(), min(timeout_s, self._sink_timeout))
        except Exception as exc:  # any failure means "not answering"
            if not self._spooling:
                self._sink_down(exc)
                self._wake.set()
            return False
        return self.sink_available

    @property
    def tail(self) -> tuple[int, bytes]:
        """``(seq, hash)`` of the newest sealed record of this writer's chain."""
        return self._sealer.seq, self._sealer.prev_hash

    @property
    def spool_path(self) -> Path:
        """Where records go while the store is down (replayed from here, then removed)."""
        return self._spool.path

    @property
    def queued(self) -> int:
        return len(self._pending)

    async def start(self) -> None:
        """Find the chain's tail (spool first, then store) and start the writer task.

        Raises :class:`ChainInUseError`, before anything is written, when another writer
        holds the chain or its spool; :class:`AuditSinkError` when the store is
        unreachable and no spool holds the tail: the chain cannot be continued without
        knowing its last hash.
        """
        if self._task is not None:
            return
        try:
            await self._start()
        except BaseException:
            # A failed start must leave neither a connection nor a lock behind.
            await self._store.close()
            self._release_spool()
            raise

    async def _start(self) -> None:
        stored: tuple[int, bytes] | None = None
        failure: Exception | None = None
        try:
            # The claim comes first: the tail read next is only the tail while no one
            # else writes. An unreachable PostgreSQL cannot be asked; then the claim is
            # made when it answers again, before the spool is replayed into it.
            await asyncio.wait_for(self._store.claim(self.chain), self._sink_timeout)
            await asyncio.wait_for(self._store.connect(), self._sink_timeout)
            stored = await asyncio.wait_for(self._store.tail(self.chain), self._sink_timeout)
        except AuditStoreError as exc:
            if not isinstance(exc, AuditSinkError):
                raise
            failure = exc
        except (OSError, TimeoutError) as exc:
            failure = exc
        await self._lock_spool()
        await asyncio.to_thread(self._spool.repair)
        spooled = await asyncio.to_thread(self._spool.last)
        if spooled is not None:
            if spooled.chain != self.chain:
                raise ChainConflictError(
                    f"spool {self._spool.path} holds chain {spooled.chain!r}, not {self.chain!r}"
                )
            if stored is not None and stored[0] > spooled.seq:
                raise ChainConflictError(
                    f"chain {self.chain!r}: the store has seq {stored[0]}, beyond the spool's"
                    f" {spooled.seq}; is another writer using this chain name?"
                )
            seq, prev_hash = spooled.seq, spooled.hash
            self._spooling = True
            _LOG.warning("audit: %s holds unreplayed records; replaying", self._spool.path)
        elif failure is None:
            seq, prev_hash = stored if stored is not None else (0, ZERO_HASH)
        else:
            raise AuditSinkError(
                f"audit store unreachable and no spool to continue chain {self.chain!r}: {failure}"
            )
        self._sealer = ChainSealer(self._keys.hmac_key, self.chain, seq, prev_hash)
        self._last_checkpoint_at = time.monotonic()
        self._next_retry = time.monotonic()
        # The tail found may never have been anchored: the previous writer may have died
        # (SIGKILL, power loss) before its next checkpoint. Seal it now, so a clean stop
        # soon after (or another crash) does not leave those records unanchored. While
        # the spool holds the tail, the replayed records are anchored once it is empty.
        self._last_checkpoint_seq = 0
        if not self._spooling and seq > 0:
            await self._checkpoint_alone()
        metrics.STORE_UP.set(0 if self._spooling else 1)
        self._task = asyncio.create_task(self._run(), name=f"dijk-audit-writer-{self.chain}")

    async def _lock_spool(self) -> None:
        try:
            self._spool_lock = await asyncio.to_thread(self._spool.lock)
        except LockHeldError as exc:
            holder = f" ({exc.holder})" if exc.holder and not exc.this_process else ""
            raise ChainInUseError(
                f"audit spool {self._spool.path} of chain {self.chain!r} is in use by another"
                f" writer{holder}; lock file {exc.path}. Each gateway instance needs its own"
                " spool: give each its own audit.chain (or audit.spool_dir)."
            ) from None
        except OSError as exc:
            # Not fatal here: the spool is only needed while the store is down, and a
            # failure to write it then is reported (and counted) as it happens.
            _LOG.warning(
                "audit: cannot lock spool %s (%s); another writer could share it",
                self._spool.path,
                exc.strerror or exc,
            )

    def _release_spool(self) -> None:
        if self._spool_lock is not None:
            lock, self._spool_lock = self._spool_lock, None
            lock.release()

    async def append(self, record: AuditRecord, *, if_refused: AuditRecord | None = None) -> None:
        """Record one request. See the module docstring for what "returns" guarantees.

        ``if_refused`` (strict durability only): what the client gets when this append
        raises :class:`AuditUnavailableError` because the store is down under
        ``on_sink_error="deny"`` (a 503, or a response cut short). The record is then
        spooled *instead of* ``record``: the log says what the client saw, not what it
        would have received had the commit succeeded.
        """
        while len(self._pending) >= self._max_queue and not self._stopped:
            self._space.clear()
            await self._space.wait()
        if self._stopped or self._task is None:
            raise AuditWriterClosedError(self._closed_reason())
        self._appended += 1
        self.stats.appended += 1
        if self.durability == "strict":
            future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            if not self._pending:
                self._first_pending_at = time.monotonic()
            self._pending.append((record, future))
            if if_refused is not None:
                self._if_refused[future] = if_refused
            self._wake.set()
            try:
                await future
            finally:
                self._if_refused.pop(future, None)
            return
        if not self._pending:
            self._first_pending_at = time.monotonic()
            self._wake.set()
        self._pending.append((record, None))
        if len(self._pending) % self._max_batch == 0:
            # A batch is full. Yield once, so that a producer that never waits for I/O
            # cannot starve the writer task (yielding on every append would be costly).
            self._wake.set()
            await asyncio.sleep(0)

    def append_nowait(self, record: AuditRecord) -> bool:
        """Queue ``record`` without waiting (for callers that cannot await).

        Used for refusals the HTTP server answers itself. The queue may exceed
        ``max_queue`` here, up to twice that; beyond, the record is counted as lost and
        logged (never silently) and False is returned.
        """
        if self._stopped or self._task is None:
            self.stats.lost += 1
            metrics.RECORDS.labels("lost").inc()
            _LOG.error("audit: record %s lost: %s", record.request_id, self._closed_reason())
            return False
        if len(self._pending) >= 2 * self._max_queue:
            self.stats.lost += 1
            metrics.RECORDS.labels("lost").inc()
            now = time.monotonic()
            if now - self._overflow_logged > 1.0:
                self._overflow_logged = now
                _LOG.error("audit: queue overflow, records lost (total %d)", self.stats.lost)
            return False
        self._appended += 1
        self.stats.appended += 1
        if not self._pending:
            self._first_pending_at = time.monotonic()
        self._pending.append((record, None))
        self._wake.set()
        return True

    async def flush(self) -> None:
        """Wait until every record appended so far is committed or spooled."""
        target = self._appended
        if self._done >= target or self._stopped:
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._flush_waiters.append((target, future))
        self._wake.set()
        await future

    async def close(self) -> None:
        """Write everything queued, replay the spool if the store is back, checkpoint."""
        self._closing = True
        self._wake.set()
        if self._task is not None:
            try:
                await self._task
            except Exception:  # already logged by _run
                _LOG.debug("audit writer task ended with an error", exc_info=True)
        self._stopped = True
        self._space.set()
        try:
            await self._store.close()
        finally:
            self._release_spool()

    async def __aenter__(self) -> AuditWriter:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    # -- the writer task ---------------------------------------------------------------

    def _closed_reason(self) -> str:
        if self._failure is not None:
            return f"audit writer failed: {self._failure}"
        return "audit writer is closed"

    async def _run(self) -> None:
        try:
            while True:
                await self._wait()
                if self._spooling and time.monotonic() >= self._next_retry:
                    await self._replay_step()
                if self._pending:
                    await self._flush_batch()
                elif self._checkpoint_due(time.monotonic()):
                    await self._checkpoint_alone()
                if self._closing and not self._pending:
                    await self._shutdown()
                    self._stopped = True
                    return
        except BaseException as exc:
            self._failure = exc
            self._stopped = True
            _LOG.critical("audit writer failed; records are no longer accepted", exc_info=True)
            error = AuditWriterClosedError(self._closed_reason())
            for _, future in self._pending:
                if future is not None and not future.done():
                    future.set_exception(error)
            self._pending.clear()
            for _, future in self._flush_waiters:
                if not future.done():
                    future.set_exception(error)
            self._flush_waiters.clear()
            self._space.set()
            raise

    def _deadline(self, now: float) -> float:
        if self._closing:
            return now
        deadline = math.inf
        if self._pending:
            if (
                self.durability == "strict"
                or self._flush_waiters
                or len(self._pending) >= self._max_batch
            ):
                return now
            deadline = self._first_pending_at + self._flush_interval
        if self._spooling:
            deadline = min(deadline, self._next_retry)
        elif self._checkpoint_seconds > 0 and self._sealer.seq > self._last_checkpoint_seq:
            deadline = min(deadline, self._last_checkpoint_at + self._checkpoint_seconds)
        return deadline

    async def _wait(self) -> None:
        now = time.monotonic()
        deadline = self._deadline(now)
        if deadline <= now:
            return
        # No await between computing the deadline and clearing: no wake-up is lost.
        self._wake.clear()
        timeout = None if math.isinf(deadline) else deadline - now
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), timeout)

    def _checkpoint_due(self, now: float) -> bool:
        if self._spooling or self._sealer.seq <= self._last_checkpoint_seq:
            return False
        unanchored = self._sealer.seq - self._last_checkpoint_seq
        if self._checkpoint_records > 0 and unanchored >= self._checkpoint_records:
            return True
        return self._checkpoint_seconds > 0 and (
            now - self._last_checkpoint_at >= self._checkpoint_seconds
        )

    def _take_batch(self) -> list[tuple[AuditRecord, asyncio.Future[None] | None]]:
        batch = self._pending[: self._max_batch]
        del self._pending[: self._max_batch]
        self._space.set()
        return batch

    async def _flush_batch(self) -> None:
        """Seal and persist pending batches, sealing the next while the last is written.

        Commits stay strictly sequential (batch N+1 is handed to the store only after
        batch N is committed or spooled); only the CPU work of sealing overlaps the
        database's work.
        """
        prepared = await self._prepare()
        while True:
            writing = asyncio.create_task(self._persist(prepared))
            await asyncio.sleep(0)  # let the write reach the driver before sealing more
            upcoming = await self._prepare() if self._next_batch_ready() else None
            await writing
            if upcoming is None:
                return
            last = prepared.sealed[-1]
            if upcoming.start != (last.seq, last.hash):
                # The batch before it was sealed again: follow its new tail.
                self._reseal(upcoming, (last.seq, last.hash), refused=False)
            prepared = upcoming

    def _next_batch_ready(self) -> bool:
        if not self._pending:
            return False
        return (
            self.durability == "strict"
            or self._closing
            or bool(self._flush_waiters)
            or len(self._pending) >= self._max_batch
        )

    async def _prepare(self) -> _Prepared:
        batch = self._take_batch()
        tail = self._sealer.seq, self._sealer.prev_hash
        seal = self._sealer.seal
        sealed: list[ChainedRecord] = []
        # Sealing costs some microseconds per record on the event loop that also serves
        # requests: a slice at a time, so a full batch never stalls them for long.
        for start in range(0, len(batch), _SEAL_SLICE):
            if start:
                await asyncio.sleep(0)
            sealed.extend(seal(record) for record, _ in batch[start : start + _SEAL_SLICE])
        futures = [future for _, future in batch if future is not None]
        now = time.monotonic()
        checkpoint = None
        if self._checkpoint_due(now):
            checkpoint = Checkpoint.create(self._keys, self.chain, sealed[-1].seq, sealed[-1].hash)
            # Counted from now, so a batch sealed while this one is written does not
            # carry a second checkpoint; if the commit fails, the next one comes later.
            self._last_checkpoint_seq = checkpoint.seq
            self._last_checkpoint_at = now
        return _Prepared(sealed, futures, checkpoint, batch, tail)

    def _reseal(self, prepared: _Prepared, start: tuple[int, bytes], refused: bool) -> None:
        """Seal ``prepared`` again after ``start`` and continue this writer's chain there.

        ``refused``: its commit failed and its strict waiters will be refused, so each
        record that named an ``if_refused`` alternative is replaced by it. Otherwise the
        batch only moves to follow a batch before it that was sealed again.
        """
        prepared.start = start
        sealer = ChainSealer(self._keys.hmac_key, self.chain, *start)
        records = []
        for record, future in prepared.batch:
            alternative = None
            if refused and future is not None and not future.done():
                alternative = self._if_refused.get(future)
            records.append(alternative or record)
        prepared.sealed = [sealer.seal(record) for record in records]
        if prepared.checkpoint is not None:
            last = prepared.sealed[-1]
            prepared.checkpoint = Checkpoint.create(self._keys, self.chain, last.seq, last.hash)
        self._sealer = sealer

    async def _persist(self, prepared: _Prepared) -> None:
        sealed, checkpoint = prepared.sealed, prepared.checkpoint
        error: BaseException | None = None
        kept = True
        if not self._spooling and await self._commit(sealed, checkpoint):
            self.stats.committed += len(sealed)
            metrics.RECORDS.labels("committed").inc(len(sealed))
            if checkpoint is not None:
                self.stats.checkpoints += 1
        else:
            if self.on_sink_error == "deny" and any(
                future in self._if_refused for future in prepared.futures
            ):
                # Its strict waiters are about to be refused: what is spooled (and later
                # replayed into the chain) must be what their clients saw.
                self._reseal(prepared, prepared.start, refused=True)
                sealed = prepared.sealed
            lost_before = self.stats.lost
            error = await self._spool_rows(sealed)
            kept = self.stats.lost == lost_before
            metrics.RECORDS.labels("spooled" if kept else "lost").inc(len(sealed))
        self.stats.batches += 1
        if kept and self._listeners:
            self._notify(sealed)
        for future in prepared.futures:
            if future.done():
                continue
            if error is None:
                future.set_result(None)
            else:
                future.set_exception(error)
        self._done += len(sealed)
        self._release_flush_waiters()

    def _notify(self, sealed: list[ChainedRecord]) -> None:
        for listener in self._listeners:
            try:
                listener(sealed)
            except Exception:  # a listener's bug must not stop the audit log
                _LOG.exception("audit listener failed")

    async def _commit(self, sealed: list[ChainedRecord], checkpoint: Checkpoint | None) -> bool:
        try:
            await asyncio.wait_for(self._store.append(sealed, checkpoint), self._sink_timeout)
        except Exception as exc:  # any failure: the records go to the spool, nothing is lost
            self._sink_down(exc)
            return False
        return True

    async def _spool_rows(self, sealed: list[ChainedRecord]) -> BaseException | None:
        """Spool rows; returns the error to hand to strict waiters, if any."""
        try:
            await self._spool.append(sealed, sync=self.durability == "strict")
        except OSError as exc:
            self.stats.lost += len(sealed)
            _LOG.critical(
                "audit: store down and spool %s unwritable (%s): %d records lost",
                self._spool.path,
                exc,
                len(sealed),
            )
            return AuditUnavailableError(f"audit store and spool unavailable: {exc}")
        self.stats.spooled += len(sealed)
        if self.on_sink_error == "deny":
            return AuditUnavailableError("audit store unavailable; record spooled locally")
        return None

    def _release_flush_waiters(self) -> None:
        if not self._flush_waiters:
            return
        remaining = []
        for target, future in self._flush_waiters:
            if target <= self._done:
                if not future.done():
                    future.set_result(None)
            else:
                remaining.append((target, future))
        self._flush_waiters = remaining

    def _mark_checkpoint(self, seq: int, now: float) -> None:
        self._last_checkpoint_seq = seq
        self._last_checkpoint_at = now
        self.stats.checkpoints += 1

    async def _checkpoint_alone(self) -> None:
        now = time.monotonic()
        seq, digest = self._sealer.seq, self._sealer.prev_hash
        checkpoint = Checkpoint.create(self._keys, self.chain, seq, digest)
        try:
            await asyncio.wait_for(self._store.add_checkpoint(checkpoint), self._sink_timeout)
        except Exception as exc:
            _LOG.warning("audit: checkpoint at seq %d not written: %s", seq, exc)
            self._last_checkpoint_at = now  # try again one period later, not in a loop
            return
        self._mark_checkpoint(seq, now)

    def _sink_down(self, exc: BaseException) -> None:
        if not self._spooling:
            _LOG.error("audit store failed (%s); spooling to %s", exc, self._spool.path)
        self.stats.sink_failures += 1
        self._spooling = True
        metrics.STORE_UP.set(0)
        self._retry_delay = self._retry_interval
        self._next_retry = time.monotonic() + self._retry_delay

    async def _replay_step(self) -> None:
        """Replay one batch from the spool; switch back to the store when it is empty."""
        try:
            await asyncio.wait_for(self._store.connect(), self._sink_timeout)
            rows, offset = await self._spool.read(self._max_batch)
            if rows:
                await asyncio.wait_for(self._store.append_replayed(rows), self._sink_timeout)
                self.stats.replayed += len(rows)
            await self._spool.advance(offset)
            if await self._spool.at_end(offset):
                await self._spool.remove()
                self._spooling = False
                metrics.STORE_UP.set(1)
                self._retry_delay = self._retry_interval
                _LOG.warning("audit store is back; spool replayed")
            else:
                self._next_retry = time.monotonic()
        except (ChainConflictError, ChainInUseError) as exc:
            _LOG.critical("audit spool replay stopped: %s", exc)
            self._retry_delay = self._max_retry_interval
            self._next_retry = time.monotonic() + self._retry_delay
        except Exception as exc:
            _LOG.debug("audit store still unavailable: %s", exc)
            self._retry_delay = min(self._retry_delay * 2, self._max_retry_interval)
            self._next_retry = time.monotonic() + self._retry_delay

    async def _shutdown(self) -> None:
        """Last chance on close: replay what the spool holds, then anchor the tail."""
        attempts = 0
        while self._spooling and attempts < 3:
            before = self.stats.replayed
            self._next_retry = 0.0
            await self._replay_step()
            attempts = 0 if self.stats.replayed > before else attempts + 1
        if self._spooling:
            _LOG.warning(
                "audit: closing with %d bytes in spool %s; they are replayed on the next start",
                self._spool.pending_bytes(),
                self._spool.path,
            )
        elif self._sealer.seq > self._last_checkpoint_seq:
            await self._checkpoint_alone()
