"""One writer per hash chain, on one machine: an exclusive lock on a small file.

A hash chain can have only one writer (each record carries the hash of the one before), so
the SQLite store and the spool take this lock before the writer touches them, and hold it
for the writer's life. ``flock(LOCK_EX | LOCK_NB)`` never waits: a second writer gets
:class:`LockHeldError` at once.

The lock belongs to the open file description, so it ends when the descriptor is closed:
at :meth:`LockFile.release`, at exit, and when the kernel reaps a process that died
(``kill -9`` included); a crashed gateway never leaves a stale lock. Two opens in one
process are two descriptions and conflict like two processes. The descriptor is not
inherited by child processes (PEP 446), so a child the gateway starts cannot keep the lock
alive after it. The file stays when released: deleting it would let a newcomer lock a new
file of that name while the old holder still holds the old one. Its content (holder's pid,
host and start time) is only for the message the next writer prints.

POSIX only, and, like SQLite itself, not for network file systems.
"""

from __future__ import annotations

import fcntl
import os
import socket
from datetime import UTC, datetime
from pathlib import Path
from typing import Final

__all__ = ["LockFile", "LockHeldError"]

_HOLDER_BYTES: Final = 512


class LockHeldError(Exception):
    """Another open file description (another process, or another writer here) holds it."""

    def __init__(self, path: Path, holder: str | None) -> None:
        self.path = path
        self.holder = holder
        """What the holder wrote (``pid N on HOST since TIME``), if readable."""
        super().__init__(f"{path} is locked" + (f" by {holder}" if holder else ""))

    @property
    def this_process(self) -> bool:
        """True when the holder is this very process (a second writer opened here)."""
        return self.holder is not None and self.holder.startswith(_identity() + " ")


def _identity() -> str:
    return f"pid {os.getpid()} on {socket.gethostname()}"


class LockFile:
    """An exclusive ``flock`` on ``path``, held until :meth:`release` or process exit."""

    def __init__(self, path: Path, descriptor: int) -> None:
        self.path = path
        self._descriptor = descriptor

    @classmethod
    def acquire(cls, path: Path) -> LockFile:
        """Lock ``path`` (created 0644 when missing: its text is not secret, and a writer
        running as another user must be able to see the lock) or raise
        :class:`LockHeldError` at once.

        Blocking file work: call it from a worker thread in async code. ``OSError`` when the
        file cannot be created or opened.
        """
        try:
            descriptor = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        except PermissionError:
            # Another user's lock file: flock works on a read-only descriptor too, so the
            # writer running as that user is reported, not a permission error.
            descriptor = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _read_holder(descriptor)
            os.close(descriptor)
            raise LockHeldError(path, holder) from None
        except BaseException:
            os.close(descriptor)
            raise
        since = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        try:
            os.ftruncate(descriptor, 0)
            os.pwrite(descriptor, f"{_identity()} since {since}\n".encode(), 0)
        except OSError:
            pass  # the lock is what counts; the text only makes the next message clearer
        return cls(path, descriptor)

    @property
    def held(self) -> bool:
        return self._descriptor >= 0

    def release(self) -> None:
        """Give the lock up (closing the descriptor); the file stays. Idempotent."""
        if self._descriptor >= 0:
            descriptor, self._descriptor = self._descriptor, -1
            os.close(descriptor)


def _read_holder(descriptor: int) -> str | None:
    try:
        text = os.pread(descriptor, _HOLDER_BYTES, 0).decode("utf-8", "replace").strip()
    except OSError:
        return None
    return text.splitlines()[0] if text else None
