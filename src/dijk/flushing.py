"""Aggregates kept in memory and written to a database on a timer: the loop they share.

The privacy data map and the API inventory aggregate on the request path (dictionaries,
no I/O) and are written periodically. :class:`PeriodicWriter` is what they share: the
background task (started on first use, on the running loop), one write at a time, the
connection opened on demand and dropped after a failure (the subclass keeps its rows for
the next try), failures logged at most once a minute, and ``close`` — stop the timer, write
what is pending, disconnect. Subclasses implement :meth:`PeriodicWriter._write`.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import Final, Generic, Protocol, TypeVar

import structlog

__all__ = ["Connectable", "PeriodicWriter"]

_ERROR_LOG_INTERVAL_S: Final = 60.0


class Connectable(Protocol):
    async def connect(self, *, create: bool) -> None: ...

    async def close(self) -> None: ...


DatabaseT = TypeVar("DatabaseT", bound=Connectable)


class PeriodicWriter(ABC, Generic[DatabaseT]):
    """The timer, lock and connection of a periodically written aggregate."""

    def __init__(
        self,
        database: Callable[[], DatabaseT],
        interval_s: float,
        *,
        name: str,
        logger: structlog.typing.FilteringBoundLogger,
    ) -> None:
        self._database_factory = database
        self._database: DatabaseT | None = None
        self._interval = interval_s
        self._name = name
        self._log = logger
        self.flushes = 0
        self.failures = 0
        self._task: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()
        self._lock = asyncio.Lock()
        self._closed = False
        self._last_error_log = 0.0

    @property
    @abstractmethod
    def pending(self) -> int:
        """Rows (or endpoints) waiting to be written."""

    @abstractmethod
    async def _write(self) -> bool:
        """Write what is pending (called under the lock); False when it failed."""

    def _ensure_task(self) -> None:
        if self._task is not None:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # not in a loop (unit tests call flush() themselves)
            return
        self._task = loop.create_task(self._run(), name=f"dijk-{self._name}")

    async def _run(self) -> None:
        while not self._closed:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self._interval)
            if self._closed:
                return
            await self.flush()

    async def flush(self) -> bool:
        """Write what is pending; True if written (or nothing to write)."""
        async with self._lock:
            return await self._write()

    async def _connected(self) -> DatabaseT:
        if self._database is None:
            database = self._database_factory()
            await database.connect(create=True)
            self._database = database
        return self._database

    async def _failed(self, exc: Exception) -> None:
        """Count and (rate-limited) log a failed write; drop the connection for a new one."""
        self.failures += 1
        await self._drop_connection()
        now = time.monotonic()
        if now - self._last_error_log < _ERROR_LOG_INTERVAL_S and self.failures > 1:
            return
        self._last_error_log = now
        self._log.warning(
            f"{self._name}_flush_failed".replace("-", "_"),
            error=type(exc).__name__,
            detail=str(exc)[:300],
            pending=self.pending,
            failures=self.failures,
        )

    async def _drop_connection(self) -> None:
        database, self._database = self._database, None
        if database is not None:
            with contextlib.suppress(Exception):
                await database.close()

    async def close(self) -> None:
        """Stop the timer, write what is pending, close the connection."""
        if self._closed:
            return
        self._closed = True
        self._wake.set()
        task, self._task = self._task, None
        if task is not None:
            await task  # lets a flush in progress finish rather than cut it off
        if not await self.flush():
            self._log.error(f"{self._name}_lost_on_close".replace("-", "_"), pending=self.pending)
        await self._drop_connection()
