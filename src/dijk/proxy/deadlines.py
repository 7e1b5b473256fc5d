"""Connection deadlines checked by one periodic sweep per event loop.

The server and the upstream pool need a deadline on almost every connection at almost every
moment (header read, keep-alive idle, upstream answer), but these deadlines almost never
pass. Arming and cancelling a loop timer for each (``call_later`` + ``cancel``, three times
per proxied request) costs more than the rest of the deadline logic together. Instead, an
owner writes its deadline into a plain attribute (``deadline``, monotonic seconds; 0 means
none), and one timer per loop sweeps the registered owners a few times per timeout length.

Precision: a deadline is acted on at most one sweep period after it passes. The period is a
tenth of the shortest timeout any owner registered with, between 50 ms and 1 s: a 10 s
header timeout fires within 10-11 s, a 0.5 s test timeout within 0.50-0.55 s.

The sweep runs only while there are owners; its cost is one attribute read per open
connection per period (10 000 idle keep-alive connections: about a millisecond a second).
"""

from __future__ import annotations

import asyncio
import time
import weakref
from typing import ClassVar, Protocol

import structlog

log = structlog.get_logger("dijk.deadlines")

MIN_PERIOD_S = 0.05
MAX_PERIOD_S = 1.0


class HasDeadline(Protocol):
    deadline: float

    def deadline_passed(self) -> None:
        """Called once the deadline has passed (the owner resets or clears it)."""


def period_for(timeout_s: float) -> float:
    """The sweep period that honours ``timeout_s`` to within a tenth of it."""
    return min(MAX_PERIOD_S, max(MIN_PERIOD_S, timeout_s / 10))


class Deadlines:
    """The sweep of one event loop (see the module docstring)."""

    _by_loop: ClassVar[weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Deadlines]] = (
        weakref.WeakKeyDictionary()
    )

    __slots__ = ("_handle", "_loop", "_owners", "period")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._owners: set[HasDeadline] = set()
        self._handle: asyncio.TimerHandle | None = None
        self.period = MAX_PERIOD_S

    @classmethod
    def of(cls, loop: asyncio.AbstractEventLoop) -> Deadlines:
        found = cls._by_loop.get(loop)
        if found is None:
            found = cls._by_loop[loop] = cls(loop)
        return found

    def add(self, owner: HasDeadline, shortest_timeout_s: float) -> None:
        """Watch ``owner`` until :meth:`discard`; its timeouts are at least this long."""
        self._owners.add(owner)
        self.period = min(self.period, period_for(shortest_timeout_s))
        if self._handle is None and not self._loop.is_closed():
            self._handle = self._loop.call_later(self.period, self._sweep)

    def discard(self, owner: HasDeadline) -> None:
        self._owners.discard(owner)

    def __len__(self) -> int:
        return len(self._owners)

    def _sweep(self) -> None:
        self._handle = None
        if not self._owners:
            return  # nothing to watch: the next add() starts the sweep again
        now = time.monotonic()
        for owner in list(self._owners):  # an owner may close, and leave, while we sweep
            deadline = owner.deadline
            if deadline and deadline <= now:
                owner.deadline = 0.0
                try:
                    owner.deadline_passed()
                except Exception:  # one owner's bug must not stop every other deadline
                    log.exception("deadline_callback_failed", owner=type(owner).__name__)
        self._handle = self._loop.call_later(self.period, self._sweep)
