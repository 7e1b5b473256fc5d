"""The lock that keeps an audit chain to one writer: flock on a file beside the database.

Refused at once (never a wait), released on close and by the kernel when the holder dies,
not inherited by child processes, and two opens in one process conflict like two processes.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from dijk.audit.lock import LockFile, LockHeldError

HOLDER = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from dijk.audit.lock import LockFile

    LockFile.acquire(Path(sys.argv[1]))
    print("locked", flush=True)
    time.sleep(60)
    """
)


def _holder(path: Path) -> subprocess.Popen[str]:
    child = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(path)], stdout=subprocess.PIPE, text=True
    )
    assert child.stdout is not None
    assert child.stdout.readline().strip() == "locked"
    return child


def test_a_second_lock_in_the_same_process_is_refused_at_once_and_names_the_holder(
    tmp_path: Path,
) -> None:
    path = tmp_path / "audit.db.dijk_audit.default.lock"
    first = LockFile.acquire(path)
    started = time.monotonic()
    with pytest.raises(LockHeldError) as refused:
        LockFile.acquire(path)
    assert time.monotonic() - started < 0.5
    assert refused.value.path == path
    assert refused.value.holder is not None
    assert refused.value.holder.startswith(f"pid {os.getpid()} on ")
    assert refused.value.this_process
    first.release()
    first.release()  # idempotent
    assert not first.held


def test_release_lets_the_next_writer_in_and_leaves_the_file(tmp_path: Path) -> None:
    path = tmp_path / "chain.lock"
    LockFile.acquire(path).release()
    assert path.exists()  # never deleted: a newcomer must lock the same inode
    assert path.stat().st_mode & 0o022 == 0  # only its owner may write it
    second = LockFile.acquire(path)
    assert second.held
    second.release()


def test_another_process_is_refused_and_a_kill_9_leaves_no_stale_lock(tmp_path: Path) -> None:
    path = tmp_path / "chain.lock"
    child = _holder(path)
    try:
        with pytest.raises(LockHeldError) as refused:
            LockFile.acquire(path)
        assert refused.value.holder is not None
        assert refused.value.holder.startswith(f"pid {child.pid} on ")
        assert not refused.value.this_process
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait(5)
    LockFile.acquire(path).release()  # the kernel released it with the process


def test_a_child_process_does_not_inherit_the_lock(tmp_path: Path) -> None:
    path = tmp_path / "chain.lock"
    lock = LockFile.acquire(path)
    # close_fds=False: even a child that keeps inheritable descriptors gets no copy.
    child = subprocess.Popen(["sleep", "30"], close_fds=False)
    try:
        lock.release()
        LockFile.acquire(path).release()
    finally:
        child.kill()
        child.wait(5)
