"""``workers: N``: N gateway processes behind one configuration, and the parent that keeps them.

The parent (:class:`Supervisor`) binds nothing and serves nothing. It starts each worker as
``dijk serve --worker N`` (a fresh interpreter, never a fork of a process with threads), and
every worker opens the data plane and admin listeners itself with ``SO_REUSEPORT``: the
kernel spreads new connections over the workers, and a worker that dies takes only its own
connections with it. The parent

- restarts a worker that exits (logged, with exponential backoff: 0.5 s doubling up to 30 s,
  back to 0.5 s once a worker has run for 30 s), and stops everything if a worker fails
  before it was ever ready (a bad port, an unreadable key: restarting would not help);
- passes SIGHUP on to every worker (each reloads the file itself, off its event loop);
- on SIGTERM/SIGINT passes SIGTERM on, waits for the workers to drain, then kills what is
  left.

What workers share only through the configuration's backends: rate limits, login guard and
revocations need ``storage.url: redis://`` to count across workers (``memory://`` is per
worker). The audit log keeps one writer per hash chain: worker ``n`` writes chain
``<audit.chain>-w<n>`` (the audit store's lock refuses a second writer on a chain), so each
chain stays one unbroken sequence that ``dijk audit verify`` checks as before; a restarted
worker takes its chain up where the dead one left it. Metrics: see ``metrics.share``.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Literal

import structlog
import uvloop

from dijk import metrics
from dijk.config import DijkConfig, load_config
from dijk.proxy.server import GatewayServer, ReloadResult

log = structlog.get_logger("dijk.workers")

_BACKOFF_FIRST_S = 0.5
_BACKOFF_MAX_S = 30.0
_STABLE_S = 30.0  # a worker that ran this long resets its backoff
_READY_TIMEOUT_S = 120.0  # a first load with a cold Hyperscan cache and large OpenAPI documents
_STOP_TIMEOUT_S = 15.0  # the workers' drain (10 s) and audit flush, with a margin
_SNAPSHOT_PERIOD_S = 1.0


def worker_count(value: int | Literal["auto"]) -> int:
    """``auto``: one worker per CPU this process may run on."""
    if value == "auto":
        return max(1, len(os.sched_getaffinity(0)))
    return value


def worker_config(config: DijkConfig, index: int) -> DijkConfig:
    """Worker ``index``'s view of ``config``: its own audit chain (one writer per chain)."""
    audit = config.audit.model_copy(update={"chain": f"{config.audit.chain}-w{index}"})
    return config.model_copy(update={"audit": audit})


# ---- the parent -----------------------------------------------------------------------------


@dataclass(slots=True)
class _Slot:
    index: int
    process: subprocess.Popen[bytes] | None = None
    ready_fd: int | None = None  # read end of the pipe the worker writes one byte to when ready
    ready: bool = False
    started: float = 0.0
    failures: int = 0
    restart_at: float | None = None


class Supervisor:
    """Starts ``count`` workers for the configuration file ``source`` and keeps them running."""

    def __init__(self, source: str, count: int) -> None:
        self.source = source
        self.count = count
        self.slots = [_Slot(index) for index in range(1, count + 1)]
        self._stop = False
        self._reload = False
        self._directory = Path(tempfile.mkdtemp(prefix="dijk-workers-"))

    def run(self) -> int:
        """Serve until SIGTERM/SIGINT; the exit status (1: a worker never became ready)."""
        previous = {
            signum: signal.signal(signum, self._on_signal)
            for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)
        }
        try:
            log.info("workers_starting", workers=self.count, config=self.source)
            for slot in self.slots:
                self._spawn(slot)
            if not self._wait_all_ready():
                return 1
            log.info("workers_started", workers=self.count, pids=self.pids())
            while not self._stop:
                self._tick()
            return 0
        finally:
            self._stop_all()
            for signum, handler in previous.items():
                signal.signal(signum, handler)
            shutil.rmtree(self._directory, ignore_errors=True)

    def pids(self) -> list[int]:
        return [slot.process.pid for slot in self.slots if slot.process is not None]

    def _on_signal(self, signum: int, _frame: FrameType | None) -> None:
        if signum == signal.SIGHUP:
            self._reload = True
        else:
            self._stop = True

    def _spawn(self, slot: _Slot) -> None:
        read_fd, write_fd = os.pipe()
        command = [
            *_dijk_command(),
            "serve",
            "--config",
            self.source,
            "--worker",
            str(slot.index),
            "--worker-dir",
            str(self._directory),
            "--ready-fd",
            str(write_fd),
        ]
        try:
            slot.process = subprocess.Popen(command, pass_fds=(write_fd,))
        finally:
            os.close(write_fd)
        slot.ready_fd = read_fd
        slot.ready = False
        slot.started = time.monotonic()
        slot.restart_at = None
        log.info("worker_started", worker=slot.index, worker_pid=slot.process.pid)

    def _wait_all_ready(self) -> bool:
        deadline = time.monotonic() + _READY_TIMEOUT_S
        while not all(slot.ready for slot in self.slots):
            if self._stop:
                return False
            if time.monotonic() > deadline:
                log.error("workers_not_ready", timeout_s=_READY_TIMEOUT_S)
                return False
            self._read_ready(0.1)
            for slot in self.slots:
                if slot.process is not None and slot.process.poll() is not None:
                    log.error(
                        "worker_failed_to_start",
                        worker=slot.index,
                        worker_pid=slot.process.pid,
                        exit=_exit_text(slot.process.returncode),
                    )
                    self._reap(slot)
                    return False
        return True

    def _read_ready(self, timeout: float) -> None:
        """Wait up to ``timeout`` for ready bytes (this is also the supervisor's sleep)."""
        waiting = {slot.ready_fd: slot for slot in self.slots if slot.ready_fd is not None}
        if not waiting:
            time.sleep(timeout)
            return
        readable, _, _ = select.select(list(waiting), [], [], timeout)
        for fd in readable:
            slot = waiting[fd]
            data = os.read(fd, 1)
            os.close(fd)
            slot.ready_fd = None
            if data:
                slot.ready = True
                if slot.failures:
                    assert slot.process is not None
                    log.info("worker_ready", worker=slot.index, worker_pid=slot.process.pid)

    def _tick(self) -> None:
        if self._reload:
            self._reload = False
            log.info("workers_reload", pids=self.pids())
            self._signal_all(signal.SIGHUP)
        self._read_ready(0.1)
        now = time.monotonic()
        for slot in self.slots:
            process = slot.process
            if process is not None and process.poll() is not None:
                ran = now - slot.started
                slot.failures = 1 if ran >= _STABLE_S else slot.failures + 1
                delay = min(_BACKOFF_MAX_S, _BACKOFF_FIRST_S * 2 ** (slot.failures - 1))
                log.warning(
                    "worker_exited",
                    worker=slot.index,
                    worker_pid=process.pid,
                    exit=_exit_text(process.returncode),
                    ran_s=round(ran, 1),
                    restart_in_s=delay,
                )
                self._reap(slot)
                slot.restart_at = now + delay
            elif process is None and slot.restart_at is not None and now >= slot.restart_at:
                self._spawn(slot)

    def _reap(self, slot: _Slot) -> None:
        """Forget an exited worker: its counters stay in the metrics, its gauges go."""
        assert slot.process is not None
        pid = slot.process.pid
        live = metrics.snapshot_path(self._directory, pid)
        with contextlib.suppress(FileNotFoundError):
            live.replace(metrics.snapshot_path(self._directory, pid, dead=True))
        if slot.ready_fd is not None:
            os.close(slot.ready_fd)
            slot.ready_fd = None
        slot.process = None

    def _signal_all(self, signum: int) -> None:
        for slot in self.slots:
            if slot.process is not None and slot.process.poll() is None:
                slot.process.send_signal(signum)

    def _stop_all(self) -> None:
        """SIGTERM every worker (each drains), then SIGKILL what is still running."""
        self._signal_all(signal.SIGTERM)
        deadline = time.monotonic() + _STOP_TIMEOUT_S
        for slot in self.slots:
            if slot.process is None:
                continue
            try:
                slot.process.wait(max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                log.error("worker_killed", worker=slot.index, worker_pid=slot.process.pid)
                slot.process.kill()
                slot.process.wait()
            self._reap(slot)
        log.info("workers_stopped")


def _dijk_command() -> list[str]:
    return [sys.executable, "-m", "dijk"]


def _exit_text(returncode: int) -> str:
    if returncode < 0:
        try:
            return signal.Signals(-returncode).name
        except ValueError:
            return f"signal {-returncode}"
    return f"status {returncode}"


# ---- a worker -------------------------------------------------------------------------------


class WorkerServer(GatewayServer):
    """A gateway in a worker process: signals come from the parent; an admin reload reaches
    every worker through it."""

    async def reload(self) -> ReloadResult:
        """The admin API's reload: this worker's result, and SIGHUP to the parent so that
        every worker reads the file (this one again too, which changes nothing)."""
        result = await super().reload()
        if result.ok:
            os.kill(os.getppid(), signal.SIGHUP)
        return result

    def reload_from_signal(self) -> None:
        self._track(super().reload())


def run_worker(source: str, index: int, directory: Path, ready_fd: int) -> None:
    """Serve as worker ``index`` until SIGTERM/SIGINT, or until the parent is gone."""
    parent = os.getppid()

    def loader() -> DijkConfig:
        return worker_config(load_config(source), index)

    config = loader()
    metrics.share(directory)

    async def main() -> None:
        loop = asyncio.get_running_loop()
        server = WorkerServer(config, source, loader, reuse_port=True)
        stopping = asyncio.Event()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, stopping.set)
        loop.add_signal_handler(signal.SIGHUP, server.reload_from_signal)
        await server.start()
        os.write(ready_fd, b"1")
        os.close(ready_fd)
        snapshots = asyncio.ensure_future(_snapshots(parent, stopping))
        try:
            await stopping.wait()
        finally:
            snapshots.cancel()
            await server.stop()
            metrics.write_snapshot()  # the last requests count too

    uvloop.run(main())


async def _snapshots(parent: int, stopping: asyncio.Event) -> None:
    """Write the metrics snapshot every second; stop if the parent died (orphaned worker)."""
    while True:
        metrics.write_snapshot()
        if os.getppid() != parent:
            log.error("worker_orphaned", parent_pid=parent)
            stopping.set()
            return
        await asyncio.sleep(_SNAPSHOT_PERIOD_S)
