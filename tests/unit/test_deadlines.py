"""Deadlines swept once per period, request ids, and the upstream exchange without timers.

These replace per-request loop timers and futures on the hot path (see bench/hotpath.py);
the tests pin down that they keep the behaviour the timers and futures had.
"""

from __future__ import annotations

import asyncio
import os
import re
import time
from typing import Any

import pytest

from dijk.proxy import gateway
from dijk.proxy.deadlines import Deadlines, period_for
from dijk.proxy.upstream import UpstreamConnection, UpstreamError, UpstreamPool


class Owner:
    def __init__(self) -> None:
        self.deadline = 0.0
        self.passed: list[float] = []

    def deadline_passed(self) -> None:
        self.passed.append(time.monotonic())


class Broken(Owner):
    def deadline_passed(self) -> None:
        raise RuntimeError("bug in an owner")


def test_the_sweep_period_is_a_tenth_of_the_timeout_within_bounds() -> None:
    assert period_for(0.5) == pytest.approx(0.05)
    assert period_for(0.01) == 0.05
    assert period_for(10) == 1.0
    assert period_for(600) == 1.0


async def test_a_passed_deadline_is_acted_on_within_one_period() -> None:
    deadlines = Deadlines.of(asyncio.get_running_loop())
    owner = Owner()
    deadlines.add(owner, 0.5)
    owner.deadline = time.monotonic() + 0.2
    set_at = time.monotonic()
    await asyncio.sleep(0.4)
    assert len(owner.passed) == 1
    assert 0.2 <= owner.passed[0] - set_at <= 0.2 + 2 * deadlines.period + 0.1
    assert owner.deadline == 0.0  # cleared before the call: it fires once
    deadlines.discard(owner)


async def test_a_cleared_or_moved_deadline_is_not_acted_on() -> None:
    deadlines = Deadlines.of(asyncio.get_running_loop())
    cleared, moved = Owner(), Owner()
    for owner in (cleared, moved):
        deadlines.add(owner, 0.5)
        owner.deadline = time.monotonic() + 0.1
    cleared.deadline = 0.0
    moved.deadline = time.monotonic() + 60
    await asyncio.sleep(0.3)
    assert cleared.passed == []
    assert moved.passed == []
    deadlines.discard(cleared)
    deadlines.discard(moved)


async def test_one_failing_owner_does_not_stop_the_others() -> None:
    deadlines = Deadlines.of(asyncio.get_running_loop())
    broken, healthy = Broken(), Owner()
    for owner in (broken, healthy):
        deadlines.add(owner, 0.5)
        owner.deadline = time.monotonic() + 0.05
    await asyncio.sleep(0.3)
    assert len(healthy.passed) == 1
    deadlines.discard(broken)
    deadlines.discard(healthy)


async def test_the_sweep_stops_when_nothing_is_watched_and_restarts_on_add() -> None:
    deadlines = Deadlines.of(asyncio.get_running_loop())
    owner = Owner()
    deadlines.add(owner, 0.5)
    deadlines.discard(owner)
    await asyncio.sleep(0.15)
    assert len(deadlines) == 0
    deadlines.add(owner, 0.5)
    owner.deadline = time.monotonic() + 0.05
    await asyncio.sleep(0.3)
    assert len(owner.passed) == 1
    deadlines.discard(owner)


# ---- request ids --------------------------------------------------------------------------------

ID = re.compile(r"[0-9a-f]{32}")


def test_request_ids_stay_unique_and_well_formed_across_many_batches() -> None:
    ids = [gateway.new_request_id() for _ in range(5 * 128 + 7)]
    assert all(ID.fullmatch(value) for value in ids)
    assert len(set(ids)) == len(ids)


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_a_forked_child_does_not_repeat_the_parents_next_ids() -> None:
    gateway.new_request_id()  # a batch is buffered now
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # child
        os.close(read)
        os.write(write, gateway.new_request_id().encode())
        os._exit(0)
    os.close(write)
    child_id = os.read(read, 64).decode()
    os.close(read)
    os.waitpid(pid, 0)
    parent_ids = {gateway.new_request_id() for _ in range(200)}
    assert ID.fullmatch(child_id)
    assert child_id not in parent_ids


# ---- upstream exchange --------------------------------------------------------------------------

HEAD = b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\nConnection: keep-alive\r\n\r\n"


class FakeTransport:
    def __init__(self) -> None:
        self.written: list[bytes] = []
        self.closed = False

    def write(self, data: bytes) -> None:
        self.written.append(data)

    def close(self) -> None:
        self.closed = True

    def is_closing(self) -> bool:
        return self.closed

    def pause_reading(self) -> None:
        return None

    def resume_reading(self) -> None:
        return None

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return default


def connection(read_timeout: float = 30.0) -> tuple[UpstreamConnection, FakeTransport]:
    pool = UpstreamPool("127.0.0.1", 9, connect_timeout=1, read_timeout=read_timeout)
    upstream = UpstreamConnection(pool)
    transport = FakeTransport()
    upstream.connection_made(transport)  # type: ignore[arg-type]
    return upstream, transport


async def test_done_waits_for_a_body_that_arrives_after_the_head() -> None:
    upstream, _ = connection()
    upstream.begin(b"GET / HTTP/1.1\r\n\r\n", head_only=False)
    upstream.data_received(HEAD + b"01234")
    head = await upstream.head()
    assert head.status == 200
    assert head.content_length == 10
    assert not upstream.finished
    chunks: list[bytes] = []
    upstream.set_sink(chunks.append)
    waiting = asyncio.ensure_future(upstream.done())
    await asyncio.sleep(0)
    assert not waiting.done()
    upstream.data_received(b"56789")
    await waiting
    assert b"".join(chunks) == b"0123456789"
    assert upstream.completed
    assert upstream.reusable


async def test_a_body_cut_short_fails_done_and_the_first_outcome_wins() -> None:
    upstream, _ = connection()
    upstream.begin(b"GET / HTTP/1.1\r\n\r\n", head_only=False)
    upstream.data_received(HEAD + b"0123")
    await upstream.head()
    upstream.connection_lost(None)
    with pytest.raises(UpstreamError) as failure:
        await upstream.done()
    assert failure.value.reason == "upstream.connection_lost"
    upstream._finish()  # a late "success" does not override the failure
    with pytest.raises(UpstreamError):
        await upstream.done()


async def test_a_reused_connection_closed_before_any_byte_is_retryable() -> None:
    upstream, _ = connection()
    upstream.reused = True
    upstream.begin(b"GET / HTTP/1.1\r\n\r\n", head_only=False)
    upstream.connection_lost(None)
    with pytest.raises(UpstreamError) as failure:
        await upstream.head()
    assert failure.value.retryable


async def test_no_answer_within_the_read_timeout_is_a_504_and_closes() -> None:
    upstream, transport = connection(read_timeout=0.2)
    upstream.begin(b"GET / HTTP/1.1\r\n\r\n", head_only=False)
    started = time.monotonic()
    with pytest.raises(UpstreamError) as failure:
        await asyncio.wait_for(upstream.head(), 2)
    assert failure.value.status == 504
    assert 0.2 <= time.monotonic() - started < 1.0
    assert transport.closed
    upstream.connection_lost(None)


async def test_bytes_that_keep_coming_push_the_read_deadline_back() -> None:
    upstream, _ = connection(read_timeout=0.3)
    upstream.begin(b"GET / HTTP/1.1\r\n\r\n", head_only=False)
    upstream.data_received(HEAD)
    await upstream.head()
    upstream.set_sink(lambda chunk: None)
    for _ in range(5):  # 0.5 s in all, but never 0.3 s without a byte
        await asyncio.sleep(0.1)
        upstream.data_received(b"x")
    upstream.data_received(b"xxxxx")
    await asyncio.wait_for(upstream.done(), 2)
    assert upstream.completed
    upstream.connection_lost(None)
